"""XOR with a 2-layer MLP: no line separates the two classes, but one hidden layer of
sigmoid units does. Binary cross-entropy on the output logit, full-batch gradient descent
with gg.optim.SGD. Run: python examples/xor_mlp.py"""

import gpugrad as gg
import gpugrad.nn as nn
import gpugrad.nn.functional as F

gg.manual_seed(0)

# The four XOR points and their labels, y = x0 xor x1.
X = gg.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y = gg.tensor([[0.0], [1.0], [1.0], [0.0]])

# z1 = W1 x + b1, a1 = sigmoid(z1); z2 = W2 a1 + b2 (a logit: the sigmoid of the output
# is inside the loss, binary_cross_entropy_with_logits, which is the stable form of BCE).
model = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Linear(4, 1))
opt = gg.optim.SGD(model.parameters(), lr=2.0)

for epoch in range(2000):
    opt.zero_grad()
    loss = F.binary_cross_entropy_with_logits(model(X), Y)
    loss.backward()
    opt.step()
    if epoch % 500 == 0 or epoch == 1999:
        print(f"epoch {epoch:>4}  loss {loss.item():.4f}")

with gg.no_grad():
    prob = model(X).sigmoid().numpy()
for x, p in zip(X.numpy(), prob.ravel(), strict=True):
    print(f"x = {x.astype(int)}  p(y=1) = {p:.3f}  predicted {int(p > 0.5)}")
accuracy = ((prob > 0.5) == (Y.numpy() > 0.5)).mean()
print(f"accuracy {accuracy:.0%}")
