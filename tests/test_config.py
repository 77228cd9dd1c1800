"""Params validation: every bad input is one clear message naming key, value and what is allowed."""

from __future__ import annotations

import pytest

from genlab.config import ConfigError, load_params, validate_params
from genlab.registry import Registry, UnknownNameError
from tests.conftest import REPO, tiny_params_dict, write_params


def with_change(path: str, value) -> dict:
    raw = tiny_params_dict()
    node = raw
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return raw


def test_registry_unknown_name_lists_the_valid_ones():
    reg = Registry("loss")
    reg.register("b")(lambda: 1)
    reg.register("a")(lambda: 2)
    with pytest.raises(UnknownNameError, match=r"unknown loss 'c'; allowed: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a")(lambda: 3)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("variants.vae.lattent_dim", 3, r"variants\.vae\.lattent_dim = 3: unknown key; allowed keys: .*latent_dim"),
        ("train.steps", "many", r"variants\.vae\.steps = 'many': .*integer"),
        ("train.batch_size", 0, r"batch_size = 0: .*greater than or equal to 1"),
        ("variants.dcgan_ns.loss", "wasserstain", r"unknown loss 'wasserstain'; allowed: energy, fgan, hinge, least_squares, minimax, nonsaturating, wasserstein"),
        ("variants.dcgan_ns.arch", "resnet", r"unknown arch 'resnet'; allowed: biggan, dcgan, dcgan_ae, mlp, mlp_ae"),
        ("variants.vae.dataset", "imagenet", r"unknown dataset 'imagenet'; allowed: .*digits"),
        ("variants.vae.family", "flow", r"unknown family 'flow'; allowed: cyclegan, discogan, gan, "
         r"gumbel_gan, handwriting, pix2pix, spade, srgan, text2image, text_wgan, "
         r"trajectory_gan, vae, video_gan, vqgan, vqvae"),
        ("variants.dcgan_ns.loss", "elbo", r"unknown loss 'elbo'; allowed: energy, fgan, hinge, least_squares, minimax, nonsaturating, wasserstein"),
        ("variants.dcgan_ns.regularizers", {"r3": {}}, r"unknown regularizer 'r3'; allowed: gradient_penalty, r1, r2, spectral_norm, weight_clip"),
        ("variants.dcgan_ns.divergence", "wasserstein", r"divergence = 'wasserstein': unknown divergence 'wasserstein'; allowed: gan, jeffrey, jensen_shannon, kl"),
        ("variants.vae.d_steps", 5, r"d_steps = 5 has no effect here; it is read by family: gan"),
        ("variants.dcgan_ns.margin", 3.0, r"margin = 3\.0 has no effect here; it is read by loss: energy"),
        ("variants.dcgan_ns.regularizers", {"spectral_norm": {"weight": 7}}, r"regularizer 'spectral_norm' does not use weight; it reads nothing"),
        ("variants.dcgan_ns.regularizers", {"r1": {"clip": 5}}, r"regularizer 'r1' does not use clip; it reads every, weight"),
        ("variants.dcgan_ns.regularizers", {"gradient_penalty": {"weight": 10}}, r"d_norm = 'batch' with regularizer 'gradient_penalty': .*d_norm: none or d_norm: layer"),
        ("variants.dcgan_ns.d_norm", "group", r"d_norm = 'group': .*'batch', 'none' or 'layer'"),
        ("evaluate.metrics", ["fid"], r"unknown metric 'fid'; allowed: conditional, coverage, displacement, elbo, frechet"),
        ("data.cifar100", {}, r"data\.cifar100 = \{\.\.\.\}: unknown key; allowed keys: cifar10, digit_strings, digits"),
        ("data.ring8.std", -1, r"data\.ring8\.std = -1: .*greater than 0"),
        ("train.optimizer.betas", [0.5, 1.5], r"betas = \[0\.5, 1\.5\]: each beta must lie in \[0, 1\)"),
        ("train.optimizer.name", "lbfgs", r"allowed: 'adam', 'rmsprop' or 'sgd'"),
        ("train.ema", 1.0, r"ema = 1\.0: .*less than 1"),
        ("device", "tpu", r"device = 'tpu': allowed: 'auto', 'cpu' or 'cuda'"),
        ("train.lr", 0.1, r"train = \{\.\.\.\}: unknown key\(s\) lr; allowed: .*optimizer"),
    ],
)  # fmt: skip
def test_bad_params_name_key_value_and_allowed(path, value, expected):
    with pytest.raises(ConfigError, match=expected):
        validate_params(with_change(path, value))


def test_variants_override_train_defaults_deeply():
    raw = tiny_params_dict()
    raw["variants"]["dcgan_ns"]["optimizer"] = {"lr": 1e-4}
    raw["variants"]["dcgan_ns"]["steps"] = 7
    params = validate_params(raw)
    v = params.variant("dcgan_ns")
    assert v.steps == 7 and v.batch_size == 16  # own value, shared default
    assert v.optimizer.lr == 1e-4 and v.optimizer.betas == (0.5, 0.999)  # merged, not replaced
    assert params.variant("vae").optimizer.lr == 2e-4
    assert params.variant("vae").loss == "elbo"  # the family's default loss


def test_a_variant_can_drop_a_shared_regularizer():
    raw = tiny_params_dict()
    raw["train"]["regularizers"] = {"r1": {"weight": 1.0}}
    raw["variants"]["dcgan_ns"]["d_norm"] = "none"  # R1 refuses a batch-normalised D
    raw["variants"]["ring_gan"]["regularizers"] = {"spectral_norm": {}}
    raw["variants"].pop("vae")
    params = validate_params(raw)
    assert set(params.variant("ring_gan").regularizers) == {"spectral_norm"}
    assert set(params.variant("dcgan_ns").regularizers) == {"r1"}


def test_unknown_variant_and_dataset_lookups():
    params = validate_params(tiny_params_dict())
    with pytest.raises(ConfigError, match=r"unknown variant 'nope'; .*dcgan_ns, ring_gan, vae"):
        params.variant("nope")
    assert params.dataset_cfg("grid25")["std"] == 0.05  # schema default when not in params
    with pytest.raises(ConfigError, match="unknown dataset 'svhn'"):
        params.dataset_cfg("svhn")


def test_overrides_parse_yaml_values(tmp_path):
    from genlab.config import load_params
    from tests.conftest import write_params

    path = write_params(tmp_path, tiny_params_dict())
    params = load_params(path, ["variants.vae.beta=4", "train.optimizer.betas=[0.0, 0.9]"])
    assert params.variant("vae").beta == 4.0
    assert params.variant("dcgan_ns").optimizer.betas == (0.0, 0.9)
    with pytest.raises(ConfigError, match="not of the form"):
        load_params(path, ["seed"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_params(tmp_path / "missing.yaml")


def test_an_unknown_train_key_is_one_error_not_one_per_variant(tmp_path):
    from genlab.config import load_params
    from tests.conftest import write_params

    path = write_params(tmp_path, tiny_params_dict())
    with pytest.raises(ConfigError) as err:
        load_params(path, ["train.foo=1"])
    lines = str(err.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith("  train = {...}: unknown key(s) foo")


def test_duplicate_keys_booleans_and_non_finite_numbers_are_refused(tmp_path):
    from genlab.config import load_params

    path = tmp_path / "params.yaml"
    path.write_text("seed: 0\nvariants:\n  a: {steps: 2}\n  a: {steps: 3}\n")
    with pytest.raises(ConfigError, match=r"found the key 'a' a second time \(first on line 3\)"):
        load_params(path)
    for change, expected in [
        (("train.steps", True), r"train|steps = 'true'"),
        (("train.optimizer.lr", float("inf")), "finite number"),
        (("variants.vae.beta", float("nan")), "finite number"),
        (("seed", 2**70), "less than or equal to 2147483647"),
        (("variants.dcgan_ns.latent_dim", 10**15), "less than or equal to 4096"),
    ]:
        with pytest.raises(ConfigError, match=expected):
            validate_params(with_change(*change))


def test_an_empty_mapping_override_replaces(tmp_path):
    from genlab.config import deep_merge

    assert deep_merge({"a": {"b": 1}}, {"a": {}}) == {"a": {}}
    assert deep_merge({"a": {"b": 1}}, {"a": {"c": 2}}) == {"a": {"b": 1, "c": 2}}


# ---------------------------------------------------------------- regularisers and d_norm
NO_BATCH_NORM = ["spectral_norm", "r1", "r2", "gradient_penalty"]


@pytest.mark.parametrize("regularizer", NO_BATCH_NORM)
def test_a_regulariser_refuses_a_batch_normalised_d_on_the_command_line(
    tmp_path, capsys, regularizer
):
    """Spectral norm, R1, R2 and the gradient penalty are defined for a D without batch norm:
    ``genlab train`` exits 2 naming d_norm, the regulariser and what is allowed."""
    from genlab.cli import main

    raw = tiny_params_dict()
    raw["variants"]["dcgan_ns"]["regularizers"] = {regularizer: {}}
    write_params(tmp_path, raw)
    code = main(["--params", str(tmp_path / "params.yaml"), "train", "dcgan_ns"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"variants.dcgan_ns = {{...}}: d_norm = 'batch' with regularizer {regularizer!r}" in err
    assert "d_norm: none or d_norm: layer" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


@pytest.mark.parametrize("d_norm", ["none", "layer"])
@pytest.mark.parametrize(
    "arch", [{"arch": "dcgan"}, {"arch": "style"}, {"arch": "dcgan_ae", "loss": "energy"},
             {"arch": "dcgan", "g_condition": "cbn", "d_condition": "projection"}],
    ids=["dcgan", "style", "dcgan_ae", "projection"],
)  # fmt: skip
def test_every_d_norm_arch_takes_the_regularisers_without_batch_norm(arch, d_norm):
    raw = tiny_params_dict()
    raw["variants"]["dcgan_ns"].update(arch, regularizers={r: {} for r in NO_BATCH_NORM})
    with pytest.raises(ConfigError, match=r"dcgan_ns = \{\.\.\.\}: d_norm = 'batch' with regular"):
        validate_params(raw)
    raw["variants"]["dcgan_ns"]["d_norm"] = d_norm
    assert validate_params(raw).variant("dcgan_ns").d_norm == d_norm


def test_the_default_params_load_and_no_regulariser_meets_batch_norm():
    """params.yaml loads; SN-GAN, faces_sagan and R1 use critics without batch norm (Miyato et al.
    2018, Mescheder et al. 2018), as WGAN-GP does."""
    params = load_params(REPO / "params.yaml")
    for name in ("sngan", "faces_sagan", "r1", "wgan_gp"):
        assert params.variant(name).d_norm == "none"
    assert params.variant("dcgan_ns").d_norm == "batch"  # the DCGAN baseline keeps batch norm
