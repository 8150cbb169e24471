"""QDQ graphs in integer arithmetic: DequantizeLinear -> Conv/MatMul -> QuantizeLinear
rewritten into QLinearConv / QLinearMatMul before constants are folded.

Exporters and quantisation tools write static int8 models as float operators wrapped in
QuantizeLinear/DequantizeLinear pairs.  Run as written, the convolution would compute in
float on dequantised weights; rewritten (as onnxruntime's QDQ transformer does, under the
conditions that keep it exact), it runs on int8 with int32 accumulation (VNNI).
"""
from __future__ import annotations

import numpy as np


def has_qdq(model) -> bool:
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)


def qdq_to_qlinear(model):
    """Rewrite the QDQ patterns of an ONNX model into integer operators, as onnxruntime's
    QDQ transformer does, so that they run in integer arithmetic:

        DQ(x) -> Conv(., DQ(w), DQ(bias int32)) -> Q   =>  QLinearConv
        DQ(a) -> MatMul(., DQ(b)) -> Q                 =>  QLinearMatMul

    Conditions (otherwise the nodes stay as they are): 8-bit activations with per-tensor
    constant scale / zero point; constant 8-bit weights, per tensor or per output channel;
    the bias (if any) an int32 constant dequantized with zero point 0 and scale exactly
    x_scale * w_scale (what quantizers produce, and what QLinearConv's bias means); the
    Conv / MatMul output read by that QuantizeLinear only.  DequantizeLinear nodes left
    without readers are removed.  Returns a new ModelProto (the argument is not modified).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    readers: dict = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in g.output}

    def const(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def dq_of(name):
        n = producer.get(name)
        if n is None or n.op_type != "DequantizeLinear" or n.domain not in ("", "ai.onnx"):
            return None
        return n

    def axis_of(n, default=1):
        for a in n.attribute:
            if a.name == "axis":
                return a.i
        return default

    def has_block(n):
        return any(a.name == "block_size" and a.i for a in n.attribute)

    def scalar_params(n):
        """(scale name, zero point name or None, dtype of the quantized input) of a per-tensor
        DQ / Q with constant parameters, else None."""
        s = const(n.input[1])
        z = const(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if s is None or s.size != 1 or s.dtype != np.float32 or has_block(n):
            return None
        if len(n.input) > 2 and n.input[2] and (z is None or z.size != 1):
            return None
        return n.input[1], (n.input[2] if len(n.input) > 2 and n.input[2] else None)

    new_inits, removed, added = [], set(), {}
    counter = [0]

    def zero_point(name, dtype):
        if name:
            return name
        key = f"__qdq_zero_{dtype}"
        if key not in added:
            added[key] = numpy_helper.from_array(np.zeros((), dtype), key)
            new_inits.append(added[key])
        return key

    def fresh(base):
        counter[0] += 1
        return f"{base}__qdq{counter[0]}"

    replacements = {}        # id(node) -> new node
    for node in list(g.node):
        if node.op_type not in ("Conv", "MatMul") or node.domain not in ("", "ai.onnx"):
            continue
        out = node.output[0]
        rd = readers.get(out, [])
        if out in graph_outputs or len(rd) != 1 or rd[0].op_type != "QuantizeLinear":
            continue
        q = rd[0]
        dx, dw = dq_of(node.input[0]), dq_of(node.input[1])
        if dx is None or dw is None or id(q) in removed:
            continue
        px, pq = scalar_params(dx), scalar_params(q)
        wq = const(dw.input[0])
        xq_t = producer.get(dx.input[0])
        if px is None or pq is None or wq is None or wq.dtype not in (np.int8, np.uint8) or has_block(dw):
            continue
        ws = const(dw.input[1])
        wz = const(dw.input[2]) if len(dw.input) > 2 and dw.input[2] else None
        if ws is None or ws.dtype != np.float32 or (len(dw.input) > 2 and dw.input[2] and wz is None):
            continue
        qz = const(pq[1]) if pq[1] else None
        ydt = qz.dtype if qz is not None else np.dtype(np.uint8)
        xz = const(px[1]) if px[1] else None
        xdt = xz.dtype if xz is not None else None
        if xdt is None:
            # no zero point: the quantized input's type is uint8 unless a producer says otherwise
            xdt = np.dtype(np.uint8) if xq_t is None or xq_t.op_type != "QuantizeLinear" else None
        if xdt not in (np.dtype(np.uint8), np.dtype(np.int8)) or ydt not in (np.dtype(np.uint8), np.dtype(np.int8)):
            continue
        if any(a.name == "output_dtype" for a in q.attribute):
            continue
        if node.op_type == "Conv":
            OC = wq.shape[0]
            if ws.size not in (1, OC) or (ws.size > 1 and axis_of(dw) % wq.ndim != 0):
                continue
            ins = [dx.input[0], px[0], zero_point(px[1], xdt), dw.input[0], dw.input[1],
                   zero_point(dw.input[2] if len(dw.input) > 2 else "", wq.dtype), pq[0], zero_point(pq[1], ydt)]
            if len(node.input) > 2 and node.input[2]:
                db = dq_of(node.input[2])
                if db is None:
                    continue
                bq, bs = const(db.input[0]), const(db.input[1])
                bz = const(db.input[2]) if len(db.input) > 2 and db.input[2] else None
                xs = const(px[0]).reshape(()).astype(np.float32)
                if bq is None or bq.dtype != np.int32 or bs is None or (bz is not None and np.any(bz != 0)):
                    continue
                want = (xs * ws.reshape(-1).astype(np.float32)).astype(np.float32)
                if not np.array_equal(np.broadcast_to(bs.reshape(-1), (OC,)), np.broadcast_to(want, (OC,))):
                    continue
                ins.append(db.input[0])
            new = helper.make_node("QLinearConv", ins, [q.output[0]], name=fresh(node.name or "qconv"))
            new.attribute.extend(node.attribute)
        else:
            N = wq.shape[-1]
            if wq.ndim != 2 or ws.size not in (1, N) or (ws.size > 1 and axis_of(dw) % 2 != 1):
                continue
            ins = [dx.input[0], px[0], zero_point(px[1], xdt), dw.input[0], dw.input[1],
                   zero_point(dw.input[2] if len(dw.input) > 2 else "", wq.dtype), pq[0], zero_point(pq[1], ydt)]
            new = helper.make_node("QLinearMatMul", ins, [q.output[0]], name=fresh(node.name or "qmatmul"))
        replacements[id(node)] = new
        removed.add(id(q))
    if not replacements:
        return model
    nodes = []
    for n in g.node:
        if id(n) in removed:
            continue
        nodes.append(replacements.get(id(n), n))
    # DequantizeLinear nodes nobody reads any more
    while True:
        read = {i for n in nodes for i in n.input} | graph_outputs
        keep = [n for n in nodes if not (n.op_type == "DequantizeLinear" and n.output[0] not in read)]
        if len(keep) == len(nodes):
            break
        nodes = keep
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(new_inits)
    # value_info of removed float tensors would only confuse shape inference
    live = {o for n in nodes for o in n.output} | {i.name for i in g.input}
    vis = [v for v in g.value_info if v.name in live]
    del g.value_info[:]
    g.value_info.extend(vis)
    return model
