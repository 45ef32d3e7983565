"""Print the compute ops of an ONNX graph (shape arithmetic omitted), one line each: index, op, node name,
inputs (W:<initializer>[dims], small constants inline, "shape" for shape-derived values), attributes.
Usage: /work/venv-real/bin/python scripts/real_exports/show_ops.py <file.onnx> [name filter] [max lines]
(A reading aid for the card's "What the graphs look like"; heuristic, not used by make_zoo.)"""
import onnx, sys
from onnx import numpy_helper
f=sys.argv[1]; pat=sys.argv[2] if len(sys.argv)>2 else ''; lim=int(sys.argv[3]) if len(sys.argv)>3 else 400
m=onnx.load(f,load_external_data=False)
init={t.name:t for t in m.graph.initializer}
meta=set()
for t in m.graph.initializer:
    if t.data_type in (6,7) : meta.add(t.name)
short={}
def sn(x):
    if x in init: 
        t=init[x]
        if len(t.dims)==0 or (len(t.dims)==1 and t.dims[0]<=4) and t.raw_data is not None and not (t.data_location==1):
            try:
                v=numpy_helper.to_array(t); return f"{x.split('.')[-2] if '.' in x else x}={v.tolist()}"
            except Exception: pass
        return f"W:{x}{list(t.dims)}"
    return short.get(x,x)
cnt=0
for n in m.graph.node:
    ins=[i for i in n.input if i]
    if n.op_type in ("Constant","Shape","ConstantOfShape") or (ins and all(i in meta for i in ins)) or (n.op_type in ("Gather","Unsqueeze","Concat","Squeeze","Slice","Cast","Range","Reshape","Expand","Mul","Add","Sub","Div","Equal","Where","Max","Min") and ins and all(i in meta for i in ins[:1]) and n.op_type not in ("Reshape","Expand")):
        if n.op_type=="Constant":
            v=numpy_helper.to_array(n.attribute[0].t) if n.attribute and n.attribute[0].type==4 else None
            if v is not None and v.size<=4 and v.dtype.kind=='f':
                short[n.output[0]]=f"c{v.tolist()}"; continue
        for o in n.output: meta.add(o)
        continue
    cnt+=1
    scope=[p.value for p in n.metadata_props if p.key=="namespace"]
    nm=n.name
    if pat and pat not in nm and not any(pat in s for s in scope): continue
    attrs={x.name:onnx.helper.get_attribute_value(x) for x in n.attribute if x.type in (1,2,7,3)}
    for k,v in list(attrs.items()):
        if isinstance(v,bytes): attrs[k]=v.decode()
    for i,o in enumerate(n.output): short[o]=f"{n.op_type}#{cnt}" + (f".{i}" if i else "")
    print(f"#{cnt} {n.op_type} [{nm[-45:]}] ({', '.join(sn(i) if i not in meta else 'shape' for i in n.input)}) {attrs if attrs else ''}")
    if cnt>lim: break
