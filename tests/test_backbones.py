"""Pre-trained backbones and their weights: torchvision's exact layout, safe reading, fitting, downloading.

The expected state dicts are written out here from the published architectures (torchvision's and
timm's model definitions), independently of the models, so a renamed or reshaped layer fails loudly.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import math
import threading
from collections import Counter

import pytest
import torch
from safetensors.torch import save as safetensors_bytes
from safetensors.torch import save_file

from pixelforge.errors import PixelforgeError
from pixelforge.models import build_model
from pixelforge.models.weights import hf_url, load_pretrained, read_state_dict, resolve_weights

# ---- the published layouts, written out -----------------------------------------------------------


class Shapes(dict):
    """Parameter name → shape, filled layer by layer."""

    def conv(self, name, out, inp, k, bias=False):
        self[f"{name}.weight"] = (out, inp, k, k)
        if bias:
            self[f"{name}.bias"] = (out,)

    def bn(self, name, c):
        for t in ("weight", "bias", "running_mean", "running_var"):
            self[f"{name}.{t}"] = (c,)
        self[f"{name}.num_batches_tracked"] = ()

    def linear(self, name, out, inp):
        self[f"{name}.weight"] = (out, inp)
        self[f"{name}.bias"] = (out,)


def resnet_shapes(blocks, bottleneck, classes=1000, channels=3):
    s = Shapes()
    s.conv("conv1", 64, channels, 7)
    s.bn("bn1", 64)
    inplanes = 64
    for layer, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks, strict=True), 1):
        for b in range(count):
            p = f"layer{layer}.{b}"
            out = planes * 4 if bottleneck else planes
            if bottleneck:
                s.conv(f"{p}.conv1", planes, inplanes, 1)
                s.bn(f"{p}.bn1", planes)
                s.conv(f"{p}.conv2", planes, planes, 3)
                s.bn(f"{p}.bn2", planes)
                s.conv(f"{p}.conv3", out, planes, 1)
                s.bn(f"{p}.bn3", out)
            else:
                s.conv(f"{p}.conv1", planes, inplanes, 3)
                s.bn(f"{p}.bn1", planes)
                s.conv(f"{p}.conv2", planes, planes, 3)
                s.bn(f"{p}.bn2", planes)
            if b == 0 and (layer > 1 or inplanes != out):
                s.conv(f"{p}.downsample.0", out, inplanes, 1)
                s.bn(f"{p}.downsample.1", out)
            inplanes = out
    s.linear("fc", classes, inplanes)
    return s


# MobileNetV3-Large, Table 1: input, kernel, expanded, output, SE squeeze width (make_divisible(exp // 4, 8)).
MOBILENET_ROWS = [
    (16, 3, 16, 16, None), (16, 3, 64, 24, None), (24, 3, 72, 24, None), (24, 5, 72, 40, 24),
    (40, 5, 120, 40, 32), (40, 5, 120, 40, 32), (40, 3, 240, 80, None), (80, 3, 200, 80, None),
    (80, 3, 184, 80, None), (80, 3, 184, 80, None), (80, 3, 480, 112, 120), (112, 3, 672, 112, 168),
    (112, 5, 672, 160, 168), (160, 5, 960, 160, 240), (160, 5, 960, 160, 240),
]


def mobilenet_shapes(classes=1000, channels=3):
    s = Shapes()
    s.conv("features.0.0", 16, channels, 3)
    s.bn("features.0.1", 16)
    for i, (inp, k, exp, out, squeeze) in enumerate(MOBILENET_ROWS, 1):
        p, j = f"features.{i}.block", 0
        if exp != inp:
            s.conv(f"{p}.0.0", exp, inp, 1)
            s.bn(f"{p}.0.1", exp)
            j = 1
        s[f"{p}.{j}.0.weight"] = (exp, 1, k, k)  # depthwise
        s.bn(f"{p}.{j}.1", exp)
        j += 1
        if squeeze:
            s.conv(f"{p}.{j}.fc1", squeeze, exp, 1, bias=True)
            s.conv(f"{p}.{j}.fc2", exp, squeeze, 1, bias=True)
            j += 1
        s.conv(f"{p}.{j}.0", out, exp, 1)
        s.bn(f"{p}.{j}.1", out)
    s.conv("features.16.0", 960, 160, 1)
    s.bn("features.16.1", 960)
    s.linear("classifier.0", 1280, 960)
    s.linear("classifier.3", classes, 1280)
    return s


# EfficientNet-B0, Table 1: expansion, kernel, input, output, blocks; SE squeezes to block input // 4.
EFFICIENTNET_STAGES = [(1, 3, 32, 16, 1), (6, 3, 16, 24, 2), (6, 5, 24, 40, 2), (6, 3, 40, 80, 3),
                       (6, 5, 80, 112, 3), (6, 5, 112, 192, 4), (6, 3, 192, 320, 1)]


def efficientnet_shapes(classes=1000, channels=3):
    s = Shapes()
    s.conv("features.0.0", 32, channels, 3)
    s.bn("features.0.1", 32)
    for stage, (e, k, inp, out, count) in enumerate(EFFICIENTNET_STAGES, 1):
        for b in range(count):
            cin = inp if b == 0 else out
            exp, p, j = cin * e, f"features.{stage}.{b}.block", 0
            if e != 1:
                s.conv(f"{p}.0.0", exp, cin, 1)
                s.bn(f"{p}.0.1", exp)
                j = 1
            s[f"{p}.{j}.0.weight"] = (exp, 1, k, k)
            s.bn(f"{p}.{j}.1", exp)
            s.conv(f"{p}.{j + 1}.fc1", cin // 4, exp, 1, bias=True)
            s.conv(f"{p}.{j + 1}.fc2", exp, cin // 4, 1, bias=True)
            s.conv(f"{p}.{j + 2}.0", out, exp, 1)
            s.bn(f"{p}.{j + 2}.1", out)
    s.conv("features.8.0", 1280, 320, 1)
    s.bn("features.8.1", 1280)
    s.linear("classifier.1", classes, 1280)
    return s


LAYOUTS = {
    # name: (expected shapes, documented parameter count at 1000 classes, from torchvision's weights docs)
    "resnet18": (lambda **kw: resnet_shapes((2, 2, 2, 2), False, **kw), 11_689_512),
    "resnet34": (lambda **kw: resnet_shapes((3, 4, 6, 3), False, **kw), 21_797_672),
    "resnet50": (lambda **kw: resnet_shapes((3, 4, 6, 3), True, **kw), 25_557_032),
    "mobilenet_v3_large": (mobilenet_shapes, 5_483_032),
    "efficientnet_b0": (efficientnet_shapes, 5_288_548),
}


def random_state(shapes: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Plausible random weights (unit-variance responses, positive variances) with exactly these keys."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) > 1:
            out[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif key.endswith("weight"):  # batch-norm scale
            out[key] = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[key] = 0.1 * torch.randn(shape, generator=g)
    return out


# ---- layouts --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(LAYOUTS))
def test_state_dict_has_torchvision_keys_shapes_and_documented_parameter_count(name):
    shapes, documented = LAYOUTS[name]
    model = build_model(name, (3, 224, 224), 1000)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes()
    assert sum(p.numel() for p in model.parameters()) == documented


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_weights_with_exactly_those_keys_load_strictly_and_predict_deterministically(name):
    shapes, _ = LAYOUTS[name]
    weights = random_state(shapes())
    model = build_model(name, (3, 32, 32), 1000).eval()
    report = load_pretrained(model, weights)
    assert report["loaded"] == len(weights) and report["head"] == "loaded"
    assert report["input_conv"] is None and report["renamed"] is None
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first, second = model(x), model(x)
    assert first.shape == (2, 1000) and torch.isfinite(first).all() and torch.equal(first, second)
    with torch.no_grad():
        features = model.forward_features(x)
    assert features.shape == (2, model.feature_dim)
    groups = model.layer_groups()
    assert sum(len(g) for g in groups) == len(list(model.parameters()))
    assert {id(p) for p in groups[-1]} == {id(p) for k, p in model.named_parameters()
                                           if k.startswith(model.head_prefixes[0] + ".")}


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0"])
def test_mobile_backbones_build_for_small_grayscale_images(name):
    model = build_model(name, (1, 28, 28), 3).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 1, 28, 28)).shape == (2, 3)


def test_efficientnet_stochastic_depth_is_identity_at_inference_and_random_in_training():
    model = build_model("efficientnet_b0", (3, 32, 32), 2, stochastic_depth=0.5)
    x = torch.rand(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))


# ---- fitting weights into a model ---------------------------------------------------------------

@pytest.mark.parametrize("name, head", [("resnet18", "fc"), ("mobilenet_v3_large", "classifier.3")])
def test_head_is_reinitialized_for_another_class_count_and_the_body_loaded(name, head):
    weights = random_state(LAYOUTS[name][0]())
    model = build_model(name, (3, 64, 64), 10)
    fresh = model.state_dict()[f"{head}.weight"].clone()
    report = load_pretrained(model, weights)
    assert report["head"] == "re-initialized for 10 classes (weights had 1000)"
    assert "head re-initialized for 10 classes (weights had 1000)" in report["messages"]
    state = model.state_dict()
    assert torch.equal(state[f"{head}.weight"], fresh)
    assert all(torch.equal(state[k], v) for k, v in weights.items() if not k.startswith(head + "."))


def test_first_convolution_is_summed_for_one_channel_and_repeated_for_four():
    weights = random_state(LAYOUTS["resnet18"][0]())
    rgb = weights["conv1.weight"]
    gray = build_model("resnet18", (1, 64, 64), 1000)
    report = load_pretrained(gray, weights)
    assert "summed" in report["input_conv"]
    assert torch.allclose(gray.conv1.weight, rgb.sum(dim=1, keepdim=True))
    rgba = build_model("resnet18", (4, 64, 64), 1000)
    report = load_pretrained(rgba, weights)
    assert "3 input channels to 4" in report["input_conv"]
    assert torch.allclose(rgba.conv1.weight[:, 3], rgb[:, 0] * 3 / 4)
    assert torch.allclose(rgba.conv1.weight[:, :3], rgb * 3 / 4)


def test_a_body_tensor_of_another_shape_is_refused_naming_it():
    weights = random_state(LAYOUTS["resnet18"][0]())
    weights["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(PixelforgeError, match=r"1 with another shape \(layer2\.0\.conv1\.weight: weights "
                                              r"\(128, 64, 5, 5\), model \(128, 64, 3, 3\)\)"):
        load_pretrained(build_model("resnet18", (3, 64, 64), 1000), weights)


def test_missing_and_unexpected_keys_are_refused_naming_them():
    weights = random_state(LAYOUTS["resnet18"][0]())
    del weights["layer3.1.bn2.running_mean"]
    weights["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(PixelforgeError, match=r"1 missing \(layer3\.1\.bn2\.running_mean\), "
                                              r"1 unexpected \(layer5\.0\.conv1\.weight\)"):
        load_pretrained(build_model("resnet18", (3, 64, 64), 1000), weights)


def test_weights_of_another_architecture_are_refused_with_a_hint():
    weights = random_state(LAYOUTS["resnet18"][0]())
    with pytest.raises(PixelforgeError, match="another architecture"):
        load_pretrained(build_model("mobilenet_v3_large", (3, 64, 64), 1000), weights)


def test_checkpoints_without_num_batches_tracked_load_as_torchvisions_2017_files_do():
    weights = {k: v for k, v in random_state(LAYOUTS["resnet18"][0]()).items()
               if not k.endswith("num_batches_tracked")}
    report = load_pretrained(build_model("resnet18", (3, 64, 64), 1000), weights)
    assert report["head"] == "loaded"


def timm_mobilenet_shapes():
    """timm's mobilenetv3_large_100: the same blocks in stages of 1, 2, 3, 4, 2, 3, named per timm."""
    s = Shapes()
    s.conv("conv_stem", 16, 3, 3)
    s.bn("bn1", 16)
    rows, stages = iter(MOBILENET_ROWS), (1, 2, 3, 4, 2, 3)
    for stage, count in enumerate(stages):
        for b in range(count):
            inp, k, exp, out, squeeze = next(rows)
            p = f"blocks.{stage}.{b}"
            if stage == 0:  # DepthwiseSeparableConv: conv_dw, bn1, conv_pw, bn2
                s[f"{p}.conv_dw.weight"] = (inp, 1, k, k)
                s.bn(f"{p}.bn1", inp)
                s.conv(f"{p}.conv_pw", out, inp, 1)
                s.bn(f"{p}.bn2", out)
                continue
            s.conv(f"{p}.conv_pw", exp, inp, 1)
            s.bn(f"{p}.bn1", exp)
            s[f"{p}.conv_dw.weight"] = (exp, 1, k, k)
            s.bn(f"{p}.bn2", exp)
            if squeeze:
                s.conv(f"{p}.se.conv_reduce", squeeze, exp, 1, bias=True)
                s.conv(f"{p}.se.conv_expand", exp, squeeze, 1, bias=True)
            s.conv(f"{p}.conv_pwl", out, exp, 1)
            s.bn(f"{p}.bn3", out)
    s.conv("blocks.6.0.conv", 960, 160, 1)
    s.bn("blocks.6.0.bn1", 960)
    s.conv("conv_head", 1280, 960, 1, bias=True)
    s.linear("classifier", 1000, 1280)
    return s


def test_timm_mobilenetv3_names_are_converted_and_its_batch_norm_eps_used():
    weights = random_state(timm_mobilenet_shapes())
    model = build_model("mobilenet_v3_large", (3, 64, 64), 1000)
    report = load_pretrained(model, weights)
    assert report["renamed"] == "timm" and report["head"] == "loaded" and report["loaded"] == len(weights)
    state = model.state_dict()
    assert torch.equal(state["features.0.0.weight"], weights["conv_stem.weight"])
    assert torch.equal(state["features.1.block.1.0.weight"], weights["blocks.0.0.conv_pw.weight"])
    assert torch.equal(state["features.2.block.1.0.weight"], weights["blocks.1.0.conv_dw.weight"])
    assert torch.equal(state["features.4.block.2.fc1.bias"], weights["blocks.2.0.se.conv_reduce.bias"])
    assert torch.equal(state["features.15.block.3.1.running_var"], weights["blocks.5.2.bn3.running_var"])
    assert torch.equal(state["features.16.1.weight"], weights["blocks.6.0.bn1.weight"])
    assert torch.equal(state["classifier.0.weight"], weights["conv_head.weight"].flatten(1))
    assert torch.equal(state["classifier.3.bias"], weights["classifier.bias"])
    assert {m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)} == {1e-5}
    assert model.config["params"]["bn_eps"] == 1e-5


def test_timm_efficientnet_b0_names_are_converted():
    s = Shapes()
    s.conv("conv_stem", 32, 3, 3)
    s.bn("bn1", 32)
    for stage, (e, k, inp, out, count) in enumerate(EFFICIENTNET_STAGES):
        for b in range(count):
            cin, p = inp if b == 0 else out, f"blocks.{stage}.{b}"
            exp = cin * e
            if e != 1:
                s.conv(f"{p}.conv_pw", exp, cin, 1)
                s.bn(f"{p}.bn1", exp)
            s[f"{p}.conv_dw.weight"] = (exp, 1, k, k)
            s.bn(f"{p}.bn2" if e != 1 else f"{p}.bn1", exp)
            s.conv(f"{p}.se.conv_reduce", cin // 4, exp, 1, bias=True)
            s.conv(f"{p}.se.conv_expand", exp, cin // 4, 1, bias=True)
            s.conv(f"{p}.conv_pwl" if e != 1 else f"{p}.conv_pw", out, exp, 1)
            s.bn(f"{p}.bn3" if e != 1 else f"{p}.bn2", out)
    s.conv("conv_head", 1280, 320, 1)
    s.bn("bn2", 1280)
    s.linear("classifier", 1000, 1280)
    weights = random_state(s)
    model = build_model("efficientnet_b0", (3, 64, 64), 1000)
    report = load_pretrained(model, weights)
    assert report["renamed"] == "timm" and report["loaded"] == len(weights)
    state = model.state_dict()
    assert torch.equal(state["features.1.0.block.2.0.weight"], weights["blocks.0.0.conv_pw.weight"])
    assert torch.equal(state["features.6.3.block.2.fc2.weight"], weights["blocks.5.3.se.conv_expand.weight"])
    assert torch.equal(state["features.8.1.running_mean"], weights["bn2.running_mean"])
    assert torch.equal(state["classifier.1.weight"], weights["classifier.weight"])


# ---- reading files ---------------------------------------------------------------------------------

def test_a_torch_file_of_plain_tensors_reads_with_wrappers_and_prefixes_removed(tmp_path):
    weights = {"a.weight": torch.ones(2, 2), "a.bias": torch.zeros(2)}
    torch.save(weights, tmp_path / "plain.pth")
    assert read_state_dict(tmp_path / "plain.pth").keys() == weights.keys()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in weights.items()}}, tmp_path / "ckpt.ckpt")
    read = read_state_dict(tmp_path / "ckpt.ckpt")
    assert read.keys() == weights.keys() and torch.equal(read["a.weight"], weights["a.weight"])
    save_file(weights, str(tmp_path / "w.safetensors"))
    assert read_state_dict(tmp_path / "w.safetensors").keys() == weights.keys()


class Payload:
    """Unpickling this would create a file: proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_torch_file_with_a_pickled_object_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"a.weight": torch.ones(1), "evil": Payload(marker)}, tmp_path / "evil.pth")
    with pytest.raises(PixelforgeError, match="refused: the file holds Python objects other than tensors"):
        read_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_files_that_are_not_tensor_mappings_are_refused(tmp_path):
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    with pytest.raises(PixelforgeError, match="expected a mapping of parameter names to tensors"):
        read_state_dict(tmp_path / "list.pt")
    torch.save({"a": torch.ones(1), "note": "text"}, tmp_path / "mixed.pt")
    with pytest.raises(PixelforgeError, match="1 entries are not tensors: note"):
        read_state_dict(tmp_path / "mixed.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(PixelforgeError, match="not a readable safetensors file"):
        read_state_dict(tmp_path / "junk.safetensors")


def test_local_sources_a_file_or_a_run_folder(tmp_path):
    save_file({"w": torch.ones(1)}, str(tmp_path / "model.safetensors"))
    assert resolve_weights(tmp_path) == tmp_path / "model.safetensors"
    assert resolve_weights(str(tmp_path / "model.safetensors")) == tmp_path / "model.safetensors"
    digest = hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    assert resolve_weights(tmp_path / "model.safetensors", sha256=digest).is_file()
    with pytest.raises(PixelforgeError, match="checksum mismatch"):
        resolve_weights(tmp_path / "model.safetensors", sha256="0" * 64)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PixelforgeError, match="must hold model.safetensors"):
        resolve_weights(tmp_path / "empty")
    with pytest.raises(PixelforgeError, match="no such weights file"):
        resolve_weights(tmp_path / "nothere.pth")
    with pytest.raises(PixelforgeError, match="64 hexadecimal digits"):
        resolve_weights(tmp_path, sha256="abc")


def test_hf_sources_map_to_the_resolve_url(monkeypatch):
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    assert hf_url("hf://timm/resnet18.a1_in1k") == "https://huggingface.co/timm/resnet18.a1_in1k/resolve/main/model.safetensors"
    assert hf_url("hf://o/r@v2/sub/w.pth") == "https://huggingface.co/o/r/resolve/v2/sub/w.pth"
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hf_url("hf://o/r") == "http://127.0.0.1:9/o/r/resolve/main/model.safetensors"
    for bad in ("hf://only-owner", "hf://o/r/../x", "hf://o/r/a b"):
        with pytest.raises(PixelforgeError):
            hf_url(bad)


# ---- downloads from a local server -----------------------------------------------------------------

WEIGHTS = safetensors_bytes({"w": torch.arange(300.0)})
SHA = hashlib.sha256(WEIGHTS).hexdigest()
FILES = {
    "/w/good.safetensors": WEIGHTS,
    f"/w/net-{SHA[:8]}.safetensors": WEIGHTS,
    "/w/net-deadbeef.safetensors": WEIGHTS,
    "/owner/repo/resolve/main/sub/file.safetensors": WEIGHTS,
    "/owner/repo/resolve/main/model.safetensors": WEIGHTS,
    "/owner/repo/resolve/main/config.json": b'{"label_names": ["a"]}',
}


class Handler(http.server.BaseHTTPRequestHandler):
    hits: Counter = Counter()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        Handler.hits[self.path] += 1
        try:
            if self.path in FILES:
                body = FILES[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/w/truncated.safetensors":  # promises more than it sends, then closes
                self.send_response(200)
                self.send_header("Content-Length", str(len(WEIGHTS) + 1000))
                self.end_headers()
                self.wfile.write(WEIGHTS[:100])
                self.close_connection = True
            else:
                self.send_error(404)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def cached_files(folder):
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_a_download_is_verified_cached_and_not_fetched_again(server, tmp_path):
    cache = tmp_path / "cache"
    url = f"{server}/w/good.safetensors"
    before = Handler.hits[url[len(server):]]
    path = resolve_weights(url, sha256=SHA, cache_dir=cache)
    assert path.name == "good.safetensors" and path.is_relative_to(cache)
    assert torch.equal(read_state_dict(path)["w"], torch.arange(300.0))
    assert resolve_weights(url, sha256=SHA, cache_dir=cache) == path
    assert Handler.hits["/w/good.safetensors"] - before == 1
    assert cached_files(cache) == [path]


def test_a_checksum_mismatch_fails_and_leaves_nothing_cached(server, tmp_path):
    with pytest.raises(PixelforgeError, match="checksum mismatch"):
        resolve_weights(f"{server}/w/good.safetensors", sha256="0" * 64, cache_dir=tmp_path / "c")
    assert cached_files(tmp_path / "c") == []


def test_a_truncated_download_fails_and_leaves_nothing_cached(server, tmp_path):
    with pytest.raises(PixelforgeError, match="connection closed after 100 of"):
        resolve_weights(f"{server}/w/truncated.safetensors", cache_dir=tmp_path / "c")
    assert cached_files(tmp_path / "c") == []


def test_a_download_over_the_size_limit_fails(server, tmp_path):
    with pytest.raises(PixelforgeError, match="too large"):
        resolve_weights(f"{server}/w/good.safetensors", cache_dir=tmp_path / "c", max_bytes=1000)
    assert cached_files(tmp_path / "c") == []


def test_a_torchvision_style_name_carries_the_start_of_the_sha256(server, tmp_path):
    path = resolve_weights(f"{server}/w/net-{SHA[:8]}.safetensors", cache_dir=tmp_path / "c")
    assert path.name == f"net-{SHA[:8]}.safetensors"
    with pytest.raises(PixelforgeError, match="its name carries the start of its SHA-256"):
        resolve_weights(f"{server}/w/net-deadbeef.safetensors", cache_dir=tmp_path / "d")
    assert cached_files(tmp_path / "d") == []


def test_hf_sources_download_from_hf_endpoint_into_the_pixelforge_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", server)
    monkeypatch.setenv("PIXELFORGE_CACHE", str(tmp_path / "pf"))
    path = resolve_weights("hf://owner/repo/sub/file.safetensors", sha256=SHA)
    assert path.is_relative_to(tmp_path / "pf" / "weights") and path.name == "file.safetensors"
    default = resolve_weights("hf://owner/repo")
    assert default.name == "model.safetensors"
    assert resolve_weights("hf://owner/repo/config.json") == default.parent / "config.json"  # side by side
    with pytest.raises(PixelforgeError, match="HTTP 404"):
        resolve_weights("hf://owner/missing")


def test_weights_read_from_bytes_round_trip_through_load_pretrained(tmp_path):
    weights = random_state(LAYOUTS["mobilenet_v3_large"][0](), seed=3)
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    (tmp_path / "mobilenet_v3_large-00000000.pth").write_bytes(buffer.getvalue())
    # a local file's name is not checked against its hash (only downloads are)
    path = resolve_weights(tmp_path / "mobilenet_v3_large-00000000.pth")
    model = build_model("mobilenet_v3_large", (1, 64, 64), 5)
    report = load_pretrained(model, read_state_dict(path))
    assert report["head"] == "re-initialized for 5 classes (weights had 1000)" and "summed" in report["input_conv"]
