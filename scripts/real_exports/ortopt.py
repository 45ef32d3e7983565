"""onnxruntime's Python transformer optimizer (onnxruntime.transformers.optimizer.optimize_model) run on
TorchScript exports of the zoo. Kept: the graphs it writes that contain contrib ops (domain com.microsoft),
named <source stem>-ort<opt_level>-<model_type>.onnx, layout "ort<opt_level>". A crash is recorded with the
traceback's last line; a graph without contrib ops is recorded (op types) but not kept, and so (budget) is a
graph whose contrib ops equal those of a graph already kept for the family, or whose whole op histogram
equals one kept for another family (status duplicate_not_kept, duplicate_of).

model_type per family: onnxruntime 1.30's optimizer knows bert, gpt2, gpt_neox, phi, qwen3, ... (no llama /
mistral / gemma / opt / gptj): decoder families without their own type use "gpt2", whose fusions (LayerNorm,
SkipLayerNorm, SimplifiedLayerNorm, Gelu, attention) are generic; qwen2 tries "qwen3" and phi3 "phi" as well.
"""
import logging
import os
import traceback
from collections import Counter

import onnx

SOURCES = {   # family: (source export file, [model types])
    "gpt2": ("ts-14-eager-fp32.onnx", ["gpt2"]),
    "gptj": ("ts-17-eager-fp32.onnx", ["gpt2"]),
    "gpt_neox": ("ts-17-eager-fp32.onnx", ["gpt_neox"]),
    "opt": ("ts-17-eager-fp32.onnx", ["gpt2"]),
    "llama": ("ts-17-eager-fp32.onnx", ["gpt2"]),
    "mistral": ("ts-17-eager-fp32.onnx", ["gpt2"]),
    "qwen2": ("ts-17-eager-fp32.onnx", ["gpt2", "qwen3"]),
    "phi3": ("ts-17-eager-fp32.onnx", ["gpt2", "phi"]),
    "gemma": ("ts-17-eager-fp32.onnx", ["gpt2"]),
    "gemma2": ("ts-17-eager-fp32.onnx", ["gpt2"]),
}
LEVELS = (1, 99)
_KEPT_FAMILY = {}
_KEPT_HIST = {}


def contrib_ops(model):
    """com.microsoft ops, and onnxruntime's ops registered in the default domain that ONNX does not define
    (e.g. SimplifiedLayerNormalization), the latter listed as "ai.onnx:<op>"."""
    c = Counter()

    def walk(g):
        for n in g.node:
            if n.domain == "com.microsoft":
                c[n.op_type] += 1
            elif n.domain in ("", "ai.onnx") and not onnx.defs.has(n.op_type):
                c["ai.onnx:" + n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(model.graph)
    return dict(sorted(c.items()))


def run(zoo, family):
    import make_zoo as Z
    from onnxruntime.transformers.optimizer import optimize_model
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    if family not in SOURCES:
        return
    src_name, types = SOURCES[family]
    src = os.path.join(Z.OUT, family, src_name)
    m = zoo.model(family)
    cfg = m.config
    for mt in types:
        for level in LEVELS:
            stem = src_name[:-len(".onnx")]
            path = os.path.join(Z.OUT, family, f"{stem}-ort{level}-{mt}.onnx")
            rec = dict(family=family, exporter="ts", opset=int(stem.split("-")[1]), opset_requested=int(stem.split("-")[1]),
                       attn="eager", dtype="fp32", layout=f"ort{level}", file=os.path.relpath(path, Z.OUT),
                       source=os.path.relpath(src, Z.OUT), optimizer_model_type=mt, opt_level=level,
                       note=f"onnxruntime.transformers.optimizer.optimize_model(model_type={mt!r}, "
                            f"num_heads={cfg.num_attention_heads}, hidden_size={cfg.hidden_size}, opt_level={level}, "
                            "use_gpu=False)")
            print(f"[zoo] {rec['file']}", flush=True)
            if os.path.exists(path):
                os.remove(path)
            try:
                opt = optimize_model(src, model_type=mt, num_heads=cfg.num_attention_heads,
                                     hidden_size=cfg.hidden_size, opt_level=level, use_gpu=False)
                model = opt.model
            except Exception as e:  # noqa: BLE001
                rec.update(status="optimizer_crashed", error=Z._last_line(e),
                           traceback_last_line=traceback.format_exc().strip().splitlines()[-1][:600])
                print(f"[zoo]   crashed: {rec['error']}", flush=True)
                zoo.record(rec)
                continue
            ops = contrib_ops(model)
            rec["contrib_op_counts"] = ops
            rec["contrib_ops"] = list(ops)
            hist = dict(sorted(Counter((n.domain or "") + ":" + n.op_type for n in model.graph.node).items()))
            rec["op_types"] = hist
            if not ops:
                rec.update(status="no_contrib_ops", kept=False)
                print("[zoo]   no contrib ops; not kept", flush=True)
                zoo.record(rec)
                continue
            # budget: not kept when the same contrib ops are already kept for this family, or when a graph
            # with exactly the same op histogram is kept for another family
            dup = _KEPT_FAMILY.get((family, tuple(sorted(ops.items()))))
            dup = dup or _KEPT_HIST.get(tuple(sorted(hist.items())))
            if dup:
                rec.update(status="duplicate_not_kept", kept=False, duplicate_of=dup)
                print(f"[zoo]   same ops as {dup}; not kept", flush=True)
                zoo.record(rec)
                continue
            _KEPT_FAMILY[(family, tuple(sorted(ops.items())))] = rec["file"]
            _KEPT_HIST[tuple(sorted(hist.items()))] = rec["file"]
            onnx.save(model, path)
            rec.update(Z.file_record(path))
            rec["kept"] = True
            zoo._check(rec, path, family, "fp32", rec["layout"])
            zoo.record(rec)
