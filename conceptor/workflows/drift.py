"""DriftWatchWorkflow: compare the files with the live state; heal data loss, repair on request.

Started by the `drift-watch` Temporal Schedule that provisioning registers. Each run plans
every step of the provisioning graph (no writes), reports what differs (result, memo, current
details), and starts a ProvisionWorkflow for only the affected steps and those they wait for
(and the seed step of a database it migrates again, or of a bucket it makes again) when a
service came back empty (always) or when `CENTRAL_DRIFT_REPAIR` is on (any drift).
That run's details say why it ran.
"""

from __future__ import annotations

import contextlib

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from conceptor.contracts import (
        DRIFT_WATCH_WORKFLOW,
        PROVISION_WORKFLOW,
        SEED_BUCKET_STEP,
        SEED_STEP,
        UNWATCHED_KINDS,
        DriftItem,
        DriftReport,
        ProvisionInput,
        ProvisionResult,
        StepResult,
    )
    from conceptor.workflows.provision import Provisioner, change_table

# Shown in the memo (the Web UI's list can show it); the full list is in the result.
MEMO_ITEMS = 20


def lost_everything(result: StepResult) -> bool:
    """A step's target holds none of its state: every object would be created.

    That is what a wiped service looks like (no realm, no bucket, no migration applied),
    as opposed to drift, where some objects are still there.
    """
    if result.diff is None:
        return False
    counts = result.diff.counts()  # the result's diff is bounded: its counts cover it all
    return counts["created"] > 0 and counts["created"] == sum(counts.values())


@workflow.defn(name=DRIFT_WATCH_WORKFLOW)
class DriftWatchWorkflow:
    def __init__(self) -> None:
        self._planner = Provisioner(plan=True)

    @workflow.run
    async def run(self) -> DriftReport:
        defaults = await self._planner.defaults()
        # A step that could not be compared is reported below; the others still count.
        with contextlib.suppress(ApplicationError):
            # The settings and graph read above: the planner need not ask the worker again.
            await self._planner.run(
                ProvisionInput(plan=True, step_deadline_seconds=defaults.step_deadline_seconds),
                defaults,
            )
        graph = defaults.graph
        report = DriftReport(checked_at=workflow.now())
        affected: list[str] = []
        for step in graph.reconciling():
            progress = self._planner.progress[step]
            result = progress.result
            if result is None or result.diff is None:
                report.unchecked[step] = progress.error or progress.state
                continue
            service = self._service(step)
            if service is not None and lost_everything(result):
                if service not in report.data_loss:
                    report.data_loss.append(service)
                affected.append(step)
            watched = [c for c in result.diff.changes if c.kind not in UNWATCHED_KINDS]
            for c in watched:
                if c.action != "unchanged":
                    report.items.append(
                        DriftItem(
                            step=step, kind=c.kind, name=c.name, action=c.action, fields=c.fields
                        )
                    )
            report.left_out += sum(
                n for action, n in result.diff.left_out.items() if action != "unchanged"
            )
            if result.diff.ref:
                report.diff_refs[step] = result.diff.ref
            # What applying would write, insert-missing rows aside (they are not drift).
            writes = any(c.action in ("create", "update", "delete") for c in watched) or any(
                result.diff.left_out.get(a) for a in ("create", "update", "delete")
            )
            if defaults.drift_repair and writes and step not in affected:
                affected.append(step)
        # A database or bucket made again is seeded again: its seed step runs after the step
        # that makes it (its migrations, ensure_buckets).
        affected += [
            s.name
            for s in graph.steps
            if s.activity in (SEED_STEP, SEED_BUCKET_STEP)
            and s.name not in affected
            and set(s.after) & set(affected)
        ]
        if affected:
            await self._repair(report, affected)
        workflow.upsert_memo(
            {
                "drift": len(report.items) + report.left_out,
                "objects": [i.label for i in report.items[:MEMO_ITEMS]],
                "data_loss": report.data_loss,
                "repaired": report.repaired,
            }
        )
        workflow.set_current_details(_details(report))
        return report

    def _service(self, step: str) -> str | None:
        found = self._planner.graph.get(step)
        return found.service if found is not None else None

    async def _repair(self, report: DriftReport, affected: list[str]) -> None:
        """One ProvisionWorkflow for just the affected steps and those they wait for, saying
        why in its details."""
        steps = sorted(self._planner.graph.with_dependencies(affected))
        why = []
        if report.data_loss:
            why.append("data loss in " + ", ".join(report.data_loss))
        drifted = [s for s in affected if self._service(s) not in report.data_loss]
        if drifted:
            why.append("drift repair (CENTRAL_DRIFT_REPAIR) of " + ", ".join(drifted))
        reason = f"started by {workflow.info().workflow_id}: " + "; ".join(why)
        child_id = f"{workflow.info().workflow_id}-repair"
        report.repair_workflow_id = child_id
        try:
            await workflow.execute_child_workflow(
                PROVISION_WORKFLOW,
                ProvisionInput(steps=list(steps), reason=reason),
                id=child_id,
                task_queue=workflow.info().task_queue,  # the core queue, where this one runs
                result_type=ProvisionResult,
                static_summary=reason[:200],
            )
            report.repaired = True
        except ChildWorkflowError as exc:
            report.unchecked["repair"] = str(exc.cause or exc)[:500]


def _details(report: DriftReport) -> str:
    if not report.has_drift and not report.unchecked:
        return "**No drift:** the live state matches the files."
    rows = []
    if report.data_loss:
        rows += [f"**Data loss:** {', '.join(report.data_loss)} came back empty", ""]
    if report.items:
        rows += change_table(
            (i.step, f"{i.kind}:{i.name}", i.action, i.fields) for i in report.items
        )
    if report.left_out:
        refs = ", ".join(
            f"{s}: `conceptor provision --diff {r}`" for s, r in report.diff_refs.items()
        )
        rows += ["", f"{report.left_out} more not listed" + (f" ({refs})" if refs else "")]
    if report.unchecked:
        rows += [
            "",
            "**Not compared:** " + "; ".join(f"{k}: {v}" for k, v in report.unchecked.items()),
        ]
    if report.repair_workflow_id:
        state = "repaired" if report.repaired else "repair failed"
        rows += ["", f"**{state}** by {report.repair_workflow_id}"]
    return "\n".join(rows)


DRIFT_WORKFLOWS = [DriftWatchWorkflow]
