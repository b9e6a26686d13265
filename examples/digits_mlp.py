"""A softmax MLP on the 8x8 digits that scikit-learn ships (1,797 images, 10 classes):
train/validation split, standardisation with the training set's statistics, mini-batch
SGD with momentum, categorical cross-entropy; per-epoch learning curve, validation
accuracy and a confusion matrix. Run: python examples/digits_mlp.py"""

import numpy as np

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F
from gpugrad.data import DataLoader, load_digits, standardize, train_val_split

gg.manual_seed(0)

# Data: x (1797, 64) in [0, 1], labels 0-9; 20% held out for validation.
x, y = load_digits()
(x_train, y_train), (x_val, y_val) = train_val_split(x, y, val_fraction=0.2, seed=0)
x_train, x_val = standardize(x_train, x_val)  # mean and std from the training set only
print(f"{len(x_train)} training and {len(x_val)} validation images of {x.shape[1]} pixels")

# 64 inputs -> 128 ReLU hidden units -> 10 logits (softmax is inside cross_entropy).
model = nn.MLP([64, 128, 10])
opt = gg.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
loader = DataLoader(x_train, y_train, batch_size=64, shuffle=True, seed=0)
xv = gg.tensor(x_val)


def predict(inputs):
    """Class predictions: the argmax of the logits, with no graph recorded."""
    with gg.no_grad():
        return model(inputs).numpy().argmax(axis=1)


for epoch in range(1, 11):
    model.train()
    total = 0.0
    for xb, yb in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        total += loss.item() * xb.shape[0]
    model.eval()
    val_acc = (predict(xv) == y_val).mean()
    print(f"epoch {epoch:>2}  train loss {total / loader.num_samples:.4f}  "
          f"val accuracy {val_acc:.1%}")

# Confusion matrix: rows are the true digits, columns the predicted ones.
pred = predict(xv)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_val, pred), 1)
print("confusion matrix (rows: true digit, columns: predicted digit)")
print("      " + " ".join(f"{d:>3}" for d in range(10)))
for d in range(10):
    print(f"  {d:>2}  " + " ".join(f"{n:>3}" for n in confusion[d]))
print(f"validation accuracy {np.trace(confusion) / confusion.sum():.1%}")
