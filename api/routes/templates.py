"""The template store that `send` steps name."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from journeys.api.deps import Slug, StoresDep
from journeys.api.errors import problem
from journeys.api.models import TemplateIn
from journeys.api.pages import Cursor, Limit, Page, paginate
from journeys.schemas.access import KB, requires
from journeys.schemas.delivery import Template
from journeys.schemas.templating import syntax_error
from journeys.schemas.validation import check_journey

router = APIRouter(prefix="/v1/templates", tags=["templates"])


@router.put("/{template_id}")
@requires("journeys:write", max_body=256 * KB)
async def put_template(template_id: Slug, body: TemplateIn, stores: StoresDep) -> Template:
    """Create or replace a template. It is checked as publishing checks it: its syntax,
    and what it refers to in every journey whose latest version sends it (422 naming the
    journey and step); a refused template changes nothing."""
    try:
        template = Template(id=template_id, **body.model_dump())
    except ValueError as err:
        raise problem(422, f"invalid template: {err}", "path", "template_id") from err
    for field, source in template.sources().items():
        if (error := syntax_error(source)) is not None:
            raise problem(422, error, "body", *field.split("."))
    templates = {t.id: t for t in await stores.templates.all()} | {template.id: template}
    errors = []
    for spec, *_ in await stores.journeys.latest():
        if not any(getattr(step, "template", None) == template_id for step in spec.steps):
            continue
        for found in check_journey(spec, templates=templates):
            step = found.loc[1] if found.loc[:1] == ("steps",) else None
            if isinstance(step, int) and getattr(spec.steps[step], "template", None) == template_id:
                errors.append({"loc": ["body"], "msg": f"journey '{spec.id}': {found.msg}"})
    if errors:
        raise HTTPException(422, detail=errors)
    await stores.templates.put(template)
    return template


@router.get("")
@requires("read")
async def list_templates(
    stores: StoresDep, limit: Limit = 100, cursor: Cursor = None
) -> Page[Template]:
    """Every template, by id."""
    return paginate(await stores.templates.all(), lambda t: t.id, limit, cursor)


@router.get("/{template_id}")
@requires("read")
async def get_template(template_id: Slug, stores: StoresDep) -> Template:
    """One stored template."""
    template = await stores.templates.get(template_id)
    if template is None:
        raise problem(404, "no such template", "path", "template_id")
    return template
