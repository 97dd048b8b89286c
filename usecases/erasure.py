"""Erasing a customer (`DELETE /v1/customers/{id}`): end their running enrollments, remove
their rows, then delete every workflow run that names them, histories included."""

from __future__ import annotations

import asyncio

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from journeys.schemas.base import Schema
from journeys.schemas.enrollment import ControlRequest
from journeys.storage.db import sessions
from journeys.storage.erase import erase_customer
from journeys.storage.stores import Stores
from journeys.usecases.controls import control, for_each
from journeys.workflows import search_attributes as sa


class Erased(Schema):
    customer_id: str
    """The customer erased."""
    enrollments_ended: int
    """Their enrollments that were running and were ended first."""
    runs_deleted: int
    """Workflow runs that name them, deleted (Temporal removes them within a minute)."""
    rows_deleted: dict[str, int]
    """Rows deleted, by table."""


async def erase(client: Client, stores: Stores, customer_id: str) -> Erased:
    """Within the erasure window (the customer's events are refused meanwhile, so none can
    start an enrollment or rebuild the profile halfway); ValueError when one is under way."""
    mine = f"{sa.CUSTOMER_ID.name} = {sa.quoted(customer_id)}"
    async with stores.erasures.window(customer_id):
        # An exit lets a send in flight settle first, so no row is written after the erase;
        # one that ended meanwhile refuses, which is as good.
        exit_ = control("exit", ControlRequest(reason="customer erased"))
        ended, _ = await for_each(client, f"{mine} AND ExecutionStatus = 'Running'", exit_)
        rows = await erase_customer(sessions(stores.engine), customer_id)
        stores.ledger.forget_recent(customer_id)  # its tracking links die here at once
        stores.reactions.forget_known(customer_id)
        runs = [(e.id, e.run_id) async for e in client.list_workflows(mine)]
        await asyncio.gather(*(_delete(client, wid, rid) for wid, rid in runs))
    return Erased(
        customer_id=customer_id,
        enrollments_ended=len(ended),
        runs_deleted=len(runs),
        rows_deleted=rows,
    )


async def _delete(client: Client, workflow_id: str, run_id: str | None) -> None:
    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or ""),
    )
    try:
        await client.workflow_service.delete_workflow_execution(request)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
