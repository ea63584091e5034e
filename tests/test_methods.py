"""Distillation methods: options validation, the registry, and the Distiller's frozen teacher."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from skd_core.errors import ConfigError, UnknownNameError
from skd_core.methods import (
    METHODS,
    DistillMethod,
    MethodOptions,
    SKDOptions,
    Step,
    build_distiller,
    register_method,
)
from skd_core.models import build_model

ALL_METHODS = ["scratch", "output_kd", "fitnet", "at", "fakd", "skd"]


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gt = torch.rand(1, 3, 32, 32)
    return (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1), gt


def _pair() -> tuple[nn.Module, nn.Module]:
    return build_model("student-smoke"), build_model("teacher-smoke")


def test_the_six_methods_are_registered():
    assert set(ALL_METHODS) <= set(METHODS.names())


@pytest.mark.parametrize("method", ALL_METHODS)
def test_loss_trains_student_and_adapters_never_the_teacher(method, batch):
    student, teacher = _pair()
    lq, gt = batch
    teacher_before = copy.deepcopy(teacher.state_dict())
    distiller = build_distiller(method, student, teacher, probe=lq).train()
    opt = torch.optim.Adam(distiller.trainable_parameters(), lr=1e-3)
    out = distiller(lq, gt)
    assert out.output.shape == gt.shape and out.loss.dim() == 0
    assert out.loss.item() == pytest.approx(sum(out.terms.values()), rel=1e-5)
    assert next(iter(out.terms)) == "pixel_l1" and (len(out.terms) > 1) == (method != "scratch")
    out.loss.backward()
    opt.step()
    assert all(p.grad is not None for p in student.parameters() if p.requires_grad)
    assert sum(p.grad.abs().sum() for p in student.parameters()) > 0
    for p in distiller.method.parameters():  # the adapters (fitnet, skd)
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, teacher_before[k]) for k, v in teacher.state_dict().items())
    assert not teacher.training and distiller.training and student.training


def test_teacher_is_outside_parameters_and_state_dict(batch):
    student, teacher = _pair()
    distiller = build_distiller("skd", student, teacher, probe=batch[0])
    keys = list(distiller.state_dict())
    # the student, its adapters and the median-heuristic bandwidths (buffers), never the teacher
    assert all(k.startswith(("student.", "method.adapters.", "method.feature_loss.bandwidth.")) for k in keys)
    assert any(k.startswith("method.adapters.") for k in keys)
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not teacher_ids & {id(p) for p in distiller.parameters()}
    n = sum(p.numel() for p in distiller.trainable_parameters())
    assert n == sum(p.numel() for p in student.parameters()) + sum(p.numel() for p in distiller.method.parameters())
    distiller.to(torch.float64)  # .to() moves the teacher too
    assert next(teacher.parameters()).dtype == torch.float64
    out = distiller(batch[0].double(), batch[1].double())
    assert out.output.dtype == torch.float64


def test_teacher_stays_in_eval_and_stops_after_its_last_tap(batch):
    student, teacher = _pair()
    calls = []
    teacher.output.register_forward_hook(lambda *_: calls.append(1))
    distiller = build_distiller("fitnet", student, teacher, probe=batch[0])
    teacher.train()  # even if someone flips it
    distiller.train()
    distiller(*batch)
    assert not teacher.training and not calls  # fitnet needs no teacher output
    build_distiller("output_kd", build_model("student-smoke"), teacher)(*batch)
    assert calls == [1]


def test_scratch_needs_no_teacher_and_others_do(batch):
    out = build_distiller("scratch", build_model("student-smoke"))(*batch)
    assert list(out.terms) == ["pixel_l1"]
    with pytest.raises(ConfigError, match="method 'fitnet' needs a teacher"):
        build_distiller("fitnet", build_model("student-smoke"), None, probe=batch[0])
    with pytest.raises(ConfigError, match="probe"):
        build_distiller("skd", *_pair())


def test_skd_terms_follow_the_options(batch):
    lq, gt = batch
    full = build_distiller("skd", *_pair(), probe=lq)(lq, gt).terms
    assert list(full) == ["pixel_l1", "skd_feature", "skd_channel", "skd_spatial", "contrastive"]
    bare = build_distiller("skd", *_pair(), {"mca_dims": "none", "contrastive": False, "distance": "l1"}, lq)
    assert list(bare(lq, gt).terms) == ["pixel_l1", "skd_feature"]
    one_tap = build_distiller("skd", *_pair(), {"taps": ["latent"], "mca_dims": "channel",
                                                "contrastive_form": "ratio"}, lq)  # its negative: taps phi(X)
    assert one_tap.method.taps == ("latent",)
    # the teacher's forward also serves the contrastive negative phi(lq) at the extractor's paths
    assert one_tap.method.teacher_taps == ("latent", "patch_embed", "encoder_level1", "encoder_level2",
                                           "encoder_level3")
    assert list(one_tap(lq, gt).terms) == ["pixel_l1", "skd_feature", "skd_channel", "contrastive"]
    assert build_distiller("fakd", *_pair()).method.teacher_taps == ("encoder_level3", "latent", "decoder_level3")


def test_contrastive_negative_from_the_teachers_forward_equals_a_second_extractor_pass(batch):
    lq, gt = batch
    distiller = build_distiller("skd", *_pair(), {"mca_dims": "none"}, lq)
    passes = []
    distiller.teacher.patch_embed.register_forward_hook(lambda *_: passes.append(1))
    out = distiller(lq, gt)
    # the forward on lq (KD features and phi(lq)), phi(student output), phi(teacher output); no 4th
    assert len(passes) == 3
    with torch.no_grad():
        teacher_out = distiller.teacher(lq)
        alone = distiller.method.contrastive(out.output, teacher_out, lq)  # computes phi(lq) itself
    assert out.terms["contrastive"] == (distiller.method.alpha3 * alone).item()


def test_options_from_plain_data_validated_and_round_tripped():
    opts = SKDOptions.from_dict({"alpha1": 1, "taps": ["latent"], "cl_weights": [1, 1, 1, 1, 1]})
    assert opts.alpha1 == 1.0 and isinstance(opts.alpha1, float) and opts.taps == ("latent",)
    assert SKDOptions.from_dict(opts.as_dict()) == opts
    defaults = SKDOptions()
    assert (defaults.alpha1, defaults.alpha2, defaults.alpha3) == (0.5, 0.1, 0.1)
    assert (defaults.distance, defaults.mca_dims, defaults.extractor) == ("gk", "both", "teacher")
    assert defaults.contrastive and defaults.taps is None
    for bad, match in [({"sigma": 0}, "'sigma' must be > 0"), ({"alpha2": -1}, "'alpha2' must be >= 0"),
                       ({"alpha3": "0.1"}, "'alpha3' must be a finite number"), ({"contrastive": 1}, "true or false"),
                       ({"taps": "latent"}, "non-empty list"), ({"cl_weights": [1.0]}, "needs 5 weights"),
                       ({"extractor": "vgg19"}, "needs option 'vgg_weights'")]:
        with pytest.raises(ConfigError, match=match):
            SKDOptions.from_dict(bad)


def test_vgg19_extractor_with_a_missing_file_names_it(tmp_path, batch):
    path = tmp_path / "vgg19.pth"
    with pytest.raises(ConfigError, match=f"VGG19 weights file not found: {path}"):
        build_distiller("skd", *_pair(), {"extractor": "vgg19", "vgg_weights": str(path)}, batch[0])


@pytest.mark.parametrize("call,message", [
    (lambda: build_distiller("fitnett", *_pair()),
     "unknown distillation method 'fitnett'; did you mean 'fitnet'? Valid: fitnet"),
    (lambda: SKDOptions.from_dict({"alpah1": 0.5}),
     "unknown distillation option 'alpah1' in options; did you mean 'alpha1'? Valid: alpha1"),
    (lambda: SKDOptions.from_dict({"mca_dims": "spatail"}),
     "unknown value of option 'mca_dims' 'spatail'; did you mean 'spatial'? Valid: spatial"),
    (lambda: build_distiller("fitnet", *_pair(), {"mca_dims": "both"}),
     "unknown distillation option 'mca_dims' in options of method 'fitnet'; did you mean 'taps'? "
     "Valid: taps, fitnet_weight"),
    (lambda: build_distiller("at", *_pair(), {"taps": ["encoder_levle2"]}),
     "unknown tap path 'encoder_levle2' in student; did you mean 'encoder_level2'? Valid: encoder_level2"),
])
def test_unknown_names_list_the_valid_choices_closest_first(call, message):
    with pytest.raises(UnknownNameError) as err:
        call()
    assert message in str(err.value)


def test_users_plug_their_own_models_and_methods(batch):
    class Net(nn.Module):
        def __init__(self, width: int) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 3, 3, padding=1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x)

    class OutputMSE(DistillMethod):
        needs_teacher_output = True

        def terms(self, step: Step) -> dict[str, torch.Tensor]:
            return {"output_mse": (step.student_out - step.teacher_out).square().mean()}

    register_method("test-output-mse", lambda student, teacher, options, probe: OutputMSE())
    with pytest.raises(ValueError, match="already registered"):
        register_method("test-output-mse", lambda *_: OutputMSE())
    student, teacher = Net(4), Net(16)
    out = build_distiller("test-output-mse", student, teacher)(*batch)
    assert list(out.terms) == ["pixel_l1", "output_mse"]
    fitnet = build_distiller("fitnet", student, teacher, {"taps": ["body.1"]}, probe=batch[0])
    fitnet(*batch).loss.backward()
    assert fitnet.method.adapters.layers["body/1"].weight.grad is not None
    with pytest.raises(UnknownNameError, match=r"'bodyy.1' in student; did you mean 'body.1'\?"):
        build_distiller("fitnet", Net(4), Net(16), {"taps": ["bodyy.1"]}, probe=batch[0])


def test_close_removes_the_hooks(batch):
    student, teacher = _pair()
    distiller = build_distiller("skd", student, teacher, probe=batch[0])
    distiller.close()
    assert not any(m._forward_hooks for m in [*student.modules(), *teacher.modules()])


def test_each_method_declares_its_own_options_and_keeps_the_builtin_names():
    names = {m: METHODS.get(m).options_class.names() for m in ALL_METHODS}
    assert names["scratch"] == [] and names["output_kd"] == ["output_kd_weight"]
    assert names["fitnet"] == ["fitnet_weight", "taps"] and names["at"] == ["at_weight", "taps"]
    assert names["fakd"] == ["fakd_weight", "taps"]
    assert {"alpha1", "alpha2", "alpha3", "sigma", "temperature", "mca_dims", "contrastive"} <= set(names["skd"])
    assert METHODS.get("at").options().at_weight == 1000.0
    with pytest.raises(ConfigError, match="options of method 'at': option 'at_weight' must be >= 0"):
        METHODS.get("at").options({"at_weight": -1})


def test_a_user_method_brings_its_own_validated_option(batch):
    from dataclasses import dataclass

    from skd_core.methods import option

    @dataclass(frozen=True)
    class ScaledOutputOptions(MethodOptions):
        scale: float = option(2.0, positive=True)

    class ScaledOutput(DistillMethod):
        needs_teacher_output = True

        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def terms(self, step: Step) -> dict[str, torch.Tensor]:
            return {"scaled": self.scale * (step.student_out - step.teacher_out).abs().mean()}

    register_method("test-scaled-output", lambda s, t, o, p: ScaledOutput(o.scale), ScaledOutputOptions)
    distiller = build_distiller("test-scaled-output", *_pair(), {"scale": 3})
    assert distiller.method.scale == 3.0
    with pytest.raises(ConfigError, match="option 'scale' must be > 0"):
        build_distiller("test-scaled-output", *_pair(), {"scale": 0})
    with pytest.raises(UnknownNameError, match="did you mean 'scale'"):
        build_distiller("test-scaled-output", *_pair(), {"scael": 1})


def test_options_are_checked_without_postponed_annotations():
    namespace: dict = {}
    exec("from dataclasses import dataclass\nfrom skd_core.methods import MethodOptions, option\n"  # noqa: S102
         "@dataclass(frozen=True)\nclass Plain(MethodOptions):\n    w: float = option(1.0, positive=True)\n",
         namespace)
    plain = namespace["Plain"]
    assert plain.from_dict({"w": 2}).w == 2.0 and isinstance(plain.from_dict({"w": 2}).w, float)
    with pytest.raises(ConfigError, match="option 'w' must be > 0"):
        plain.from_dict({"w": 0})
