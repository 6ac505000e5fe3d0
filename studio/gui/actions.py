"""What the window does: each action reads plain data from the session on the GUI thread,
starts a core verb as a job, and puts the result back into the session when the job ends.
Every action returns its job (or None when it could not start, with a message saying why).

Dialogs stay in the window: an action that needs the user's word (consent to run code,
keeping a cancelled job's partial result) emits a signal, and the window asks.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from studio.core import criteria, verbs
from studio.core.errors import UntrustedFile
from studio.core.model.request import ModelRequest
from studio.core.plan.plan import predict
from studio.gui.jobs import Job, JobManager, worker_threads


# -- job bodies: plain data in, plain data out (run in worker threads) ----------------------
def _score(lm, s, criterion: str, spec: str | None, cancel=None):
    data = verbs.data_for(lm, spec) if criteria.needs_data(criterion) else None
    return (yield from verbs.score(lm.model, s, criterion, data, batches=8, cancel=cancel))


def _evaluate(original, current, spec: str, cancel=None):
    data = verbs.data_for(current, spec)
    base = None if original is current else original
    res = yield from verbs.evaluate(current, data, baseline=base, cancel=cancel)
    return res


def _latency(original, current, flops_ratio: float, runtime: str = "torch", cancel=None):
    from studio.core.jobs import progress
    from studio.core.train.evaluate import compare_latency

    yield progress(0, 1, f"measuring latency in {runtime} (dense and pruned, interleaved)")
    return compare_latency(
        original.model,
        current.model,
        current.input_size,
        flops_ratio,
        batch_sizes=(1, 16),
        threads=worker_threads(),
        cancel=cancel,
        runtime=runtime,
    )


def _finetune(lm, spec: str, cfg, teacher, cancel=None):
    data = verbs.data_for(lm, spec)
    tuned = yield from verbs.finetune(lm, data, cfg, teacher=teacher, cancel=cancel)
    scores = None
    if tuned.lm is not None:
        s = verbs.map_structure(tuned.lm)
        scores = (s, {"l1": (yield from verbs.score(tuned.lm.model, s, "l1"))})
    return tuned, scores


def _pipeline(lm, spec: str, cfg, cancel=None):
    data = verbs.data_for(lm, spec)
    if cfg.pipeline == "sensitivity":
        return (yield from verbs.sensitivity(lm, data, cfg, cancel=cancel))
    return (yield from verbs.run_pipeline(lm, data, cfg, cancel=cancel))


class Actions(QObject):
    message = Signal(str, int)  # status bar text, milliseconds
    failed = Signal(str, str, str, object)  # title, one-line message, details, exception
    trustNeeded = Signal(object, object)  # the ModelRequest, the UntrustedFile error
    keepPartial = Signal(str, object)  # a question, and what to do on "yes"
    opened = Signal(object)  # the request of a model that opened
    eventsFor = Signal(str, object)  # job kind ("finetune", "pipeline:NAME"), the job

    def __init__(self, session, jobs: JobManager, parent=None):
        super().__init__(parent)
        self.session, self.jobs = session, jobs
        self.reconstruct = False  # Model ▸ Reconstruct consumers when pruning

    def _start(
        self, name: str, verb, *args, on_done, on_failed=None, mutates: bool = True, **kwargs
    ) -> Job | None:
        job = self.jobs.start(name, verb, *args, mutates=mutates, **kwargs)
        if job is None:
            self.message.emit("Another job is running: wait for it or cancel it", 5000)
            return None
        job.finished.connect(on_done)
        job.failed.connect(
            on_failed or (lambda m, d, e, n=name: self.failed.emit(f"{n} failed", m, d, e))
        )
        job.cancelled.connect(
            lambda n=name: self.message.emit(f"{n}: cancelled, nothing changed", 6000)
        )
        return job

    def _need_data(self, what: str) -> bool:
        if self.session.data_spec:
            return False
        self.message.emit(f"{what} needs data: Model ▸ Data source…", 8000)
        return True

    # -- open -----------------------------------------------------------------------------
    def open(self, req: ModelRequest, prefetch=None) -> Job | None:
        """Open ``req`` in a job; ``prefetch`` (a ``jobs.Prefetch`` of ``open_model`` for the
        same request, started before the window existed) is followed instead of a new load."""

        def done(o: verbs.Opened):
            self.session.set_model(o.lm, o.structure, o.scores)
            self.opened.emit(req)
            self.message.emit(f"opened {o.lm.name} ({o.lm.describe_source()})", 5000)

        def failed(msg, details, exc):
            if isinstance(exc, UntrustedFile) and not req.trust:
                self.trustNeeded.emit(req, exc)
            else:
                self.failed.emit(f"Cannot open {req.label}", msg, details, exc)

        if prefetch is not None:
            return self._start(
                f"open {req.label}",
                verbs.open_prefetched,
                prefetch,
                req,
                on_done=done,
                on_failed=failed,
            )
        return self._start(
            f"open {req.label}", verbs.open_model, req, on_done=done, on_failed=failed
        )

    def revert(self) -> None:
        """Back to the original model (kept in memory: nothing is reloaded)."""
        s = self.session
        if s.pruned:
            s.set_model(s.original, s.original_structure, s.original_scores)

    # -- scores and plans -----------------------------------------------------------------
    def score(self, criterion: str) -> Job | None:
        s = self.session
        if not s.loaded or criterion in s.scores:
            return None
        if criteria.needs_data(criterion) and self._need_data(f"'{criterion}'"):
            return None
        lm, st = s.lm, s.structure
        return self._start(
            f"scoring ({criterion})",
            _score,
            lm,
            st,
            criterion,
            s.data_spec,
            on_done=lambda sc: s.lm is lm and s.set_scores(criterion, sc),
        )

    def select_latency(self, params: dict) -> Job | None:
        """The latency-aware auto-select: time the layers (a job), then replace the plan."""
        s = self.session
        if not s.loaded:
            return None
        scores = s.scores.get(params["criterion"])
        if scores is None:
            return None
        if self.jobs.busy():  # its timings need the machine to themselves
            self.message.emit(
                "Another job is running: the latency-aware selection times layers and needs "
                "the machine to itself; wait for it or cancel it",
                8000,
            )
            return None
        lm, st = s.lm, s.structure

        def done(plan):
            if s.lm is not lm:  # another model was opened meanwhile
                return
            lat = plan.meta.get("latency", {})
            got = predict(plan, st).flops / st.original.flops
            how = (
                "latency-aware" if plan.meta.get("scope") == "latency" else "uniform (timed faster)"
            )
            s.replace_plan(plan, f"auto-select {params['criterion']} {how} to {got:.0%}")
            whole = lat.get("whole") or {}
            if whole.get("kept") == "uniform":
                self.message.emit(
                    f"latency-aware: timed whole at batch {lat['batch']}, the uniform plan ran "
                    f"faster ({whole['uniform_ms']:.1f} against {whole['latency_ms']:.1f} ms): "
                    f"it is the plan now",
                    10000,
                )
            elif whole:
                self.message.emit(
                    f"latency-aware plan: FLOPs {got:.0%}; timed whole at batch {lat['batch']}: "
                    f"{whole['latency_ms']:.1f} ms against {whole['uniform_ms']:.1f} for the "
                    f"uniform plan",
                    10000,
                )
            elif lat.get("dense_ms"):  # no uniform plan near this target to time it against
                self.message.emit(
                    f"latency-aware plan: FLOPs {got:.0%}; the timed layers "
                    f"{lat['predicted_ms'] / lat['dense_ms']:.0%} of their time at batch "
                    f"{lat['batch']} (predicted)",
                    10000,
                )

        return self._start(
            f"latency-aware selection (batch {params['latency_batch']})",
            verbs.select_plan,
            lm,
            st,
            params["criterion"],
            scores=scores,
            scope="latency",
            flops_target=params["flops_target"],
            round_to=params["round_to"],
            latency_batch=params["latency_batch"],
            protect=params["protect"],
            drop_blocks=params["drop_blocks"],
            on_done=done,
            mutates=True,  # no other job starts while it times
        )

    def apply(self) -> Job | None:
        s = self.session
        if not s.loaded or s.plan.is_empty():
            self.message.emit("The plan is empty: select channels or blocks first", 5000)
            return None
        plan = s.plan.copy()
        before = s.structure.original.flops
        refit = self.reconstruct and bool(s.data_spec)
        if self.reconstruct and not s.data_spec:
            self.message.emit("Reconstruction needs data: Model ▸ Data source…", 8000)
            return None

        def done(res: verbs.Applied):
            step = {"plan": plan.to_dict()}
            if res.report.get("reconstruction"):
                step["reconstruct"] = True  # the exported recipe refits too
            s.adopt(res.lm, res.structure, f"prune {len(s.history)}", step, res.scores)
            rec = res.report.get("reconstruction")
            self.message.emit(
                f"pruned: FLOPs {res.structure.original.flops / before:.1%} of "
                f"the previous model, "
                f"{res.structure.original.flops / s.original_cost.flops:.1%} "
                f"of the original"
                + (
                    f"; {rec['layers']} layers reconstructed (output error "
                    f"{rec['error_before']:.3f} → {rec['error_after']:.3f})"
                    if rec
                    else ""
                ),
                8000,
            )

        return self._start(
            "apply plan",
            verbs.apply,
            s.lm,
            s.structure,
            plan,
            reconstruct_on=s.data_spec if refit else None,
            on_done=done,
        )

    # -- measure --------------------------------------------------------------------------
    def evaluate(self) -> Job | None:
        s = self.session
        if not s.loaded or self._need_data("Evaluate"):
            return None

        def done(res):
            cur = {k: res[k] for k in ("top1", "top5", "loss", "n")}
            orig = res.get("baseline", cur)
            s.set_results(
                eval_original={k: orig[k] for k in ("top1", "top5", "loss")},
                eval_current=cur,
                eval_note=res.get("note"),
            )
            self.message.emit(
                f"top-1 {orig['top1']:.4f} → {cur['top1']:.4f}"
                + (f"  ({res['note']})" if res.get("note") else ""),
                8000,
            )

        return self._start("evaluate", _evaluate, s.original, s.lm, s.data_spec, on_done=done)

    def latency(self) -> Job | None:
        s = self.session
        if not s.loaded:
            return None
        ratio = s.structure.original.flops / s.original_cost.flops
        return self._start(
            "latency",
            _latency,
            s.original,
            s.lm,
            ratio,
            s.latency_runtime,
            on_done=lambda lat: s.set_results(latency=lat),
        )

    # -- train ----------------------------------------------------------------------------
    def finetune(self, cfg) -> Job | None:
        s = self.session
        if not s.loaded or self._need_data("Fine-tuning"):
            return None
        teacher = s.original if cfg.kd_weight > 0 and s.original is not s.lm else None
        label = f"fine-tune {len(s.runs) + 1}"

        def adopt(tuned, mapped):
            st, scores = mapped
            s.add_run(label, [m for m in tuned.metrics if m.get("type") == "epoch"])
            s.adopt(tuned.lm, st, "fine-tuned", {"finetune": cfg.as_dict()}, scores)
            a = tuned.report["after"]
            s.set_results(eval_current={"top1": a["top1"], "top5": a["top5"], "loss": a["loss"]})

        def done(out):
            tuned, mapped = out
            if not tuned.cancelled:
                adopt(tuned, mapped)
                a = tuned.report["after"]
                self.message.emit(
                    f"fine-tuning done: best top-1 {a['top1']:.4f} (epoch {a['best_epoch']})", 8000
                )
            elif tuned.lm is None:
                self.message.emit(
                    "fine-tuning cancelled before the first epoch ended: nothing changed", 8000
                )
            else:
                a = tuned.report["after"]
                self.keepPartial.emit(
                    f"Fine-tuning was cancelled after {tuned.report['epochs_done']} of "
                    f"{cfg.epochs} epochs (best top-1 {a['top1']:.4f}). Keep this partial "
                    f"result as the working model?",
                    lambda: adopt(tuned, mapped),
                )

        job = self._start("fine-tune", _finetune, s.lm, s.data_spec, cfg, teacher, on_done=done)
        if job is not None:
            self.eventsFor.emit("finetune", job)
        return job

    def run_pipeline(self, cfg) -> Job | None:
        """A pipeline's result becomes the working model (sensitivity only analyses: its
        suggestion is applied as an undoable plan edit by the pipeline view)."""
        s = self.session
        if not s.loaded or self._need_data("Pipelines"):
            return None
        lm = s.lm

        def adopt(run):
            s.set_results(pipeline=run.history)
            s.adopt(run.lm, run.structure, cfg.pipeline, {"pipeline": cfg.as_dict()}, run.scores)
            self.message.emit(
                f"{cfg.pipeline} done: FLOPs now "
                f"{run.structure.original.flops / s.original_cost.flops:.1%} "
                f"of the original",
                8000,
            )

        def done(res):
            if cfg.pipeline == "sensitivity":
                if s.lm is lm:
                    s.set_results(sensitivity=res)
                return
            if res.cancelled:
                self.keepPartial.emit(
                    f"The {cfg.pipeline} pipeline was cancelled; its best result so far is "
                    f"at {res.structure.original.flops / s.original_cost.flops:.0%} of the "
                    f"original FLOPs (not fine-tuned). Keep it as the working model?",
                    lambda: adopt(res),
                )
                return
            adopt(res)

        job = self._start(
            f"pipeline ({cfg.pipeline})", _pipeline, lm, s.data_spec, cfg, on_done=done
        )
        if job is not None:
            self.eventsFor.emit(f"pipeline:{cfg.pipeline}", job)
        return job
