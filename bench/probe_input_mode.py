"""Probe: does the RGB-difference input make the V3S pretext learnable for a tiny R(2+1)D? (docs/demo.md)

    python bench/probe_input_mode.py STORE PRESET STEPS rgb|diff LR     # e.g. /tmp/dr/storeB40 ts 600 diff 0.05
"""
import importlib.util, json, sys, time
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
spec = importlib.util.spec_from_file_location("dr", str(__import__("pathlib").Path(__file__).with_name("demo_research.py"))); dr = importlib.util.module_from_spec(spec); spec.loader.exec_module(dr)
from v3s.shared.labels import LabelSpace
from v3s.shared.models import build_backbone, V3SHead
from v3s.shared.clips import PretextClips

store, preset, steps, mode, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
torch.set_num_threads(1); torch.manual_seed(0)
mem = dr.MemStore(store)
ls = LabelSpace.preset(preset)
class Net(nn.Module):
    def __init__(self):
        super().__init__(); self.bb = build_backbone("r21d", 0.25); self.head = V3SHead(self.bb.feature_dim, ls.n_spatial, ls.n_temporal)
    def forward(self, x):
        if mode == "diff":
            x = x[:, :, 1:] - x[:, :, :-1]
        return self.head(self.bb(x))
model = Net()
train = PretextClips(mem, "ucf101", "1", "train", ls, 16, seed=0)
held = PretextClips(mem, "ucf101", "1", "test", ls, 16, seed=999)
opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
g = torch.Generator().manual_seed(0); rng = np.random.default_rng(0)
t0 = time.perf_counter(); rs = rt = rn = 0
for step in range(steps):
    train.set_epoch(step // 20)
    items = [train[int(i)] for i in rng.integers(0, len(train), 16)]
    clips, ys, yt = dr._collate(items)
    x = dr._pretext(clips, ys, ls, g, 32, 128)
    for pg in opt.param_groups: pg["lr"] = dr._lr_at(step, steps, lr, 50)
    ps, pt = model(x); loss = F.cross_entropy(ps, ys) + F.cross_entropy(pt, yt)
    opt.zero_grad(); loss.backward(); opt.step()
    rs += int((ps.argmax(1) == ys).sum()); rt += int((pt.argmax(1) == yt).sum()); rn += 16
    if (step + 1) % 100 == 0:
        print(json.dumps(dict(step=step + 1, loss=round(loss.item(), 3), train_s=round(rs / rn, 3), train_t=round(rt / rn, 3), s=round(time.perf_counter() - t0))), flush=True); rs = rt = rn = 0
model.eval(); rs = rt = n = 0
with torch.no_grad():
    for rep in range(2):
        held.set_epoch(10000 + rep); items = [held[i] for i in range(len(held))]
        for b in range(0, len(items), 50):
            clips, ys, yt = dr._collate(items[b:b + 50]); x = dr._pretext(clips, ys, ls, g, 32, 128)
            ps, pt = model(x); rs += int((ps.argmax(1) == ys).sum()); rt += int((pt.argmax(1) == yt).sum()); n += len(ys)
print("HELD", mode, preset, dict(spatial=rs / n, temporal=rt / n, chance_s=1 / ls.n_spatial, chance_t=1 / ls.n_temporal), flush=True)
