"""The digits MLP of digits_mlp.py, trained on the GPU when one is usable, else on the CPU
(saying why). The device is passed explicitly: the model's parameters move with
model.to(device), the DataLoader copies the data there once, and .numpy() is the one
explicit way back to the host. Run: python examples/digits_gpu.py"""

import time

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.data import DataLoader, load_digits, standardize, train_val_split

if gg.cuda.is_available():
    device = gg.device("cuda")
    print(f"training on {device}: {gg.cuda.reason()}")
else:
    device = gg.device("cpu")
    print(f"no usable GPU, training on the CPU: {gg.cuda.reason()}")

gg.manual_seed(0)

x, y = load_digits()
(x_train, y_train), (x_val, y_val) = train_val_split(x, y, val_fraction=0.2, seed=0)
x_train, x_val = standardize(x_train, x_val)

model = nn.MLP([64, 128, 10]).to(device)  # the parameters now live on `device`
opt = gg.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
loader = DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=0, device=device)
xv = gg.tensor(x_val, device=device)  # validation inputs on the same device


def predict(inputs):
    with gg.no_grad():
        return model(inputs).numpy().argmax(axis=1)  # .numpy(): device -> host


start = time.perf_counter()
for epoch in range(1, 11):
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * xb.shape[0]
    val_acc = (predict(xv) == y_val).mean()
    print(f"epoch {epoch:>2}  train loss {total / loader.num_samples:.4f}  "
          f"val accuracy {val_acc:.1%}")
seconds = time.perf_counter() - start

print(f"parameters on {model.parameters()[0].device}, batches on {loader.device}")
print(f"validation accuracy {(predict(xv) == y_val).mean():.1%} "
      f"({seconds:.2f} s for 10 epochs on {device})")
