"""The template store that `send` steps name."""

from __future__ import annotations

from fastapi import APIRouter
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

from api.deps import StoresDep
from api.errors import problem
from api.models import TemplateIn
from schemas.delivery import Template

router = APIRouter(prefix="/v1/templates", tags=["templates"])
_env = SandboxedEnvironment()


@router.put("/{template_id}")
async def put_template(template_id: str, body: TemplateIn, stores: StoresDep) -> Template:
    for field, source in body.model_dump(exclude_none=True).items():
        try:
            _env.parse(source)
        except TemplateSyntaxError as err:
            raise problem(
                422, f"template syntax: {err.message} (line {err.lineno})", "body", field
            ) from err
    try:
        template = Template(id=template_id, **body.model_dump())
    except ValueError as err:
        raise problem(422, "template id must be a lowercase slug", "path", "template_id") from err
    await stores.templates.put(template)
    return template


@router.get("")
async def list_templates(stores: StoresDep) -> list[Template]:
    return await stores.templates.all()


@router.get("/{template_id}")
async def get_template(template_id: str, stores: StoresDep) -> Template:
    template = await stores.templates.get(template_id)
    if template is None:
        raise problem(404, f"template '{template_id}' not found", "path", "template_id")
    return template
