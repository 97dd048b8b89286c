"""Erasing a customer (`DELETE /v1/customers/{id}`): end their running enrollments, remove
their rows, then delete every workflow run that names them, histories included."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from schemas.enrollment import ControlRequest
from storage.db import sessions
from storage.erase import erase_customer
from storage.stores import Stores
from workflows import search_attributes as sa

REASON = ControlRequest(reason="customer erased")


class Erased(BaseModel):
    customer_id: str
    enrollments_ended: int
    runs_deleted: int
    rows_deleted: dict[str, int]


async def erase(client: Client, stores: Stores, customer_id: str) -> Erased:
    quoted = customer_id.replace("\\", "\\\\").replace('"', '\\"')
    mine = f'{sa.CUSTOMER_ID.name} = "{quoted}"'
    running = [e.id async for e in client.list_workflows(f'{mine} AND ExecutionStatus = "Running"')]
    # An exit lets a send in flight settle first, so no row is written after the erase.
    ended = await asyncio.gather(*(_exit(client, wid) for wid in running))
    rows = await erase_customer(sessions(stores.engine), customer_id)
    runs = [(e.id, e.run_id) async for e in client.list_workflows(mine)]
    await asyncio.gather(*(_delete(client, wid, rid) for wid, rid in runs))
    return Erased(
        customer_id=customer_id,
        enrollments_ended=sum(ended),
        runs_deleted=len(runs),
        rows_deleted=rows,
    )


async def _exit(client: Client, workflow_id: str) -> bool:
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.execute_update("exit", REASON)
        return True
    except WorkflowUpdateFailedError:
        return False  # it ended meanwhile
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise


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
