import * as k from "kiln";
k.manualSeed(0);
const net = k.nn.sequential(
  k.nn.conv2d(1, 32, 3, { padding: 1 }),
  k.nn.relu(),
  k.nn.maxPool2d(2),
  k.nn.conv2d(32, 64, 3, { padding: 1 }),
  k.nn.relu(),
  k.nn.maxPool2d(2),
  k.nn.flatten(),
  k.nn.linear(64 * 7 * 7, 10),
);
const step = k.trainStep(net, (logits, y) => k.nn.functional.crossEntropy(logits, y!), k.optim.sgd({ lr: 0.01 }));
export const cnnStep = k.program(step, { x: k.f32([64, 1, 28, 28]), y: k.i32([64]) }, { name: "cnnStep" });
