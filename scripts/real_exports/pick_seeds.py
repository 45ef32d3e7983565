"""Pick the per-family seed offset (families.SEED_OFFSET): for offsets 0..7, the mean |delta p(clean top-1)| at
the last position over knockouts of the 'subject' [0, 1] and 'previous' [last-1] edges at layer 0, layer 1 and
both. Usage: /work/venv-real/bin/python scripts/real_exports/pick_seeds.py <family>   (prints the best 3)."""
import os
import sys; sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch; torch.set_num_threads(1)
import families as F, knockout as K
prompts=[[17,42,99,5,120],[3,41,59,26,53,58,97],[110,8,77,123,64,31,9,80],[12,34,56,78,90,21,43,65,87],[101,102,33,44,55,66]]
fam=sys.argv[1]
orig=F.FAMILIES.index
res=[]
for k in range(8):
    F.SEED_OFFSET={fam:k}
    m=F.build(fam)
    d=[]
    for pr in prompts:
        ids=torch.tensor([pr]); T=len(pr)-1
        with torch.no_grad(): p=m(input_ids=ids,use_cache=False).logits[0,-1].softmax(-1)
        top=p.argmax()
        for srcs in ([0,1],[T-1]):
          for layers in ({0:None},{1:None},{0:None,1:None}):
            with K.knockout(m,fam,{"layers":layers,"edges":[(T,s) for s in srcs]}):
                with torch.no_grad(): p1=m(input_ids=ids,use_cache=False).logits[0,-1].softmax(-1)
            d.append(abs(p1[top]-p[top]).item())
    res.append((sum(d)/len(d),k, min(d)))
print(fam, sorted(res,reverse=True)[:3])
