"""Soft targets: the objective's fused CE + KL equals PyTorch's two losses (values and gradients, any
temperature, chunked or not, padding ignored), compiles without a graph per step, and only one
method may supply them."""

import pytest
import torch
import torch.nn.functional as F

import tinylm.losses.cross_entropy as ce_module
from tinylm.errors import UserError
from tinylm.methods.base import Method
from tinylm.train.loop import train_step
from tinylm.train.objective import Objective
from tinylm.losses.soft_targets import SoftTargets, cross_entropy_kl, target_distribution


def _reference(logits, labels, teacher, temperature):
    """CE and per-token KL(softmax(teacher/T) ‖ softmax(logits/T)), both averaged over labelled positions."""
    keep = labels != -100
    ce = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    kl = F.kl_div(F.log_softmax(logits / temperature, -1), F.log_softmax(teacher / temperature, -1),
                  log_target=True, reduction="none").sum(-1)[keep].mean()
    return ce, kl


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("chunk_rows", [None, 3])
def test_fused_ce_and_kl_equal_pytorch_values_and_gradients(temperature, chunk_rows, monkeypatch):
    if chunk_rows:  # several float chunks, the last one short (10 rows = 3 x 3 + 1)
        monkeypatch.setattr(ce_module, "FLOAT32_CHUNK_BYTES", 8 * 13 * chunk_rows)
    torch.manual_seed(0)
    logits = (torch.randn(2, 5, 13, dtype=torch.float64) * 2).requires_grad_()
    teacher = torch.randn(2, 5, 13, dtype=torch.float64) * 2
    labels = torch.randint(13, (2, 5))
    labels[1, 3:] = -100
    targets = SoftTargets(*target_distribution(teacher, temperature), weight=0.7, temperature=temperature)
    ce, kl = cross_entropy_kl(logits, labels, targets)
    ref_ce, ref_kl = _reference(logits, labels, teacher, temperature)
    torch.testing.assert_close((ce, kl), (ref_ce, ref_kl))
    (ours,) = torch.autograd.grad(0.3 * ce + 0.7 * temperature ** 2 * kl, logits)
    (theirs,) = torch.autograd.grad(0.3 * ref_ce + 0.7 * temperature ** 2 * ref_kl, logits)
    torch.testing.assert_close(ours, theirs)
    assert float(ours[1, 3:].abs().sum()) == 0.0  # padding gets no gradient from either term
    assert torch.autograd.gradcheck(lambda z: cross_entropy_kl(z, labels, targets), (logits.detach().requires_grad_(),))


def test_bf16_logits_and_targets_stay_within_one_rounding():
    torch.manual_seed(1)
    logits = torch.randn(4, 16, 101) * 3
    teacher = torch.randn(4, 16, 101) * 3
    labels = torch.randint(101, (4, 16))
    low = logits.bfloat16().requires_grad_()
    ce, kl = cross_entropy_kl(low, labels, SoftTargets(*target_distribution(teacher, 1.0, torch.bfloat16), 0.5))
    ref_ce, ref_kl = _reference(low.detach().float(), labels, teacher, 1.0)
    torch.testing.assert_close(ce, ref_ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(kl, ref_kl, rtol=2e-2, atol=2e-3)  # the targets rounded to bf16
    (ce + kl).backward()
    assert low.grad.dtype == torch.bfloat16 and torch.isfinite(low.grad.float()).all()
    # the objective runs under the run's autocast: no sum in it may drop to a bf16 matmul
    with torch.autocast("cpu", dtype=torch.bfloat16):
        targets = SoftTargets(*target_distribution(teacher, 1.0, torch.bfloat16), 0.5)
        under_autocast = cross_entropy_kl(low, labels, targets)
    torch.testing.assert_close(under_autocast, (ce, kl), rtol=1e-6, atol=1e-6)


class _Teacher(Method):
    """Soft targets from a fixed random teacher, like distill without loading runs."""

    name = "fixed-teacher"

    def __init__(self, weight=0.5, temperature=1.0):
        super().__init__(None)
        self.weight, self.temperature, self.seen = weight, temperature, []

    def soft_targets(self, run, batch):
        g = torch.Generator().manual_seed(int(batch["input_ids"].sum()))
        teacher = torch.randn(*batch["input_ids"].shape, 97, generator=g) * 2
        return SoftTargets(*target_distribution(teacher, self.temperature), self.weight, self.temperature)

    def on_soft_loss(self, run, ce, kl):
        self.seen.append((float(ce), float(kl)))


def test_the_loop_fits_soft_targets_and_reports_both_terms(make_run):
    teacher = _Teacher(weight=0.25, temperature=2.0)
    run = make_run(methods=[teacher], grad_accum=2)
    batch = run.batches.next_batch()
    run.batches.position = 0  # the step reads this batch again
    targets = teacher.soft_targets(run, batch)
    _, ce, kl, _ = Objective(run.model)(batch["input_ids"], None, batch["labels"], False, targets)
    loss = train_step(run, torch.amp.GradScaler("cpu", enabled=False))[0]
    assert len(teacher.seen) == 2  # one report per micro-batch
    assert teacher.seen[0] == pytest.approx((float(ce.detach()), float(kl.detach())), rel=1e-6)
    assert float(loss) == pytest.approx(sum(c for c, _ in teacher.seen) / 2, rel=1e-6)  # the logged loss is the CE


def test_two_methods_with_soft_targets_are_one_line_error(make_run):
    with pytest.raises(UserError, match="both give the model soft targets"):  # a run built by hand: its constructor says so
        make_run(methods=[_Teacher(), _Teacher()])


@pytest.mark.slow
def test_compiled_objective_with_soft_targets_trains_as_eager_and_compiles_once(make_run):
    from torch._dynamo.utils import counters

    losses = []
    for compile_ in (False, True):
        run = make_run(methods=[_Teacher(weight=0.5, temperature=2.0)], compile=compile_, precision="bf16")
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        losses.append([float(train_step(run, scaler)[0])])
        compiled = counters["stats"]["unique_graphs"]
        losses[-1] += [float(train_step(run, scaler)[0]) for _ in range(3)]
        assert counters["stats"]["unique_graphs"] == compiled  # new targets each step, the same graph
    torch.testing.assert_close(losses[1], losses[0], rtol=2e-3, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_compiled_and_eager_gradients_agree(temperature):
    """The backward has two forms (one fused expression compiled, in place eager): same numbers."""
    from tinylm.losses.cross_entropy import cross_entropy

    torch.manual_seed(3)
    logits = torch.randn(3, 7, 53) * 2
    labels = torch.randint(53, (3, 7))
    labels[0, :2] = -100
    targets = SoftTargets(*target_distribution(torch.randn(3, 7, 53) * 2, temperature), 0.4, temperature)

    def losses(z):
        ce, kl = cross_entropy_kl(z, labels, targets)
        return 0.6 * ce + 0.4 * temperature ** 2 * kl + cross_entropy(z, labels)

    grads = []
    for fn in (losses, torch.compile(losses)):
        z = logits.clone().requires_grad_()
        fn(z).backward()
        grads.append(z.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-7)
