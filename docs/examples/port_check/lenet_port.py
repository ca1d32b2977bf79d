"""A PyTorch port of lenet.lua (docs/porting.md, "Checking a PyTorch port").

``Net`` has the classic slip: Torch7's ``nn.SpatialMaxPooling(3, 3, 2, 2):ceil()`` became
``nn.MaxPool2d(3, 2)``, which rounds the output size down. The second convolution and
pooling happen to bring both back to 16x5x5, so the port runs, loads the weights and
gives plausible outputs, only different ones. ``FixedNet`` is the faithful port.
"""

import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.pool1 = nn.MaxPool2d(3, 2)
        self.conv2 = nn.Conv2d(6, 16, 4)
        self.pool2 = nn.MaxPool2d(2, 2)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = x.flatten(1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return F.log_softmax(self.fc3(x), dim=1)


class FixedNet(Net):
    def __init__(self):
        super().__init__()
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
