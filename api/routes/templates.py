"""The template store that `send` steps name."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Slug, StoresDep
from api.errors import problem
from api.models import TemplateIn
from schemas.delivery import Template
from schemas.templating import syntax_error

router = APIRouter(prefix="/v1/templates", tags=["templates"])


@router.put("/{template_id}")
async def put_template(template_id: Slug, body: TemplateIn, stores: StoresDep) -> Template:
    """Create or replace a template. Journeys that use it are checked against its
    variables when they are published."""
    try:
        template = Template(id=template_id, **body.model_dump())
    except ValueError as err:
        raise problem(422, f"invalid template: {err}", "path", "template_id") from err
    for field, source in template.sources().items():
        if (error := syntax_error(source)) is not None:
            raise problem(422, error, "body", *field.split("."))
    await stores.templates.put(template)
    return template


@router.get("")
async def list_templates(stores: StoresDep) -> list[Template]:
    return await stores.templates.all()


@router.get("/{template_id}")
async def get_template(template_id: Slug, stores: StoresDep) -> Template:
    template = await stores.templates.get(template_id)
    if template is None:
        raise problem(404, "no such template", "path", "template_id")
    return template
