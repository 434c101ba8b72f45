// A deferred target (targets/deferred-targets.ts: webgpu, cuda, reference) whose code fails to
// load on first use — a chunk missing from an installed package, a browser's failed fetch of a
// dynamically imported module — is a KilnError naming the target, at the k.compile /
// k.compileModel call's line, not the loader's raw error from inside the registry. The three
// built-in entries take their factory from deferredFactory; a target registered here with one
// whose load fails stands for them (vi.doMock of a module the registry imports dynamically
// does not reach its import reliably when k.compile's prepareTarget imports it at once too).

import { describe, expect, test } from "vitest";
import * as k from "kiln";
import { deferredFactory } from "../../targets/registry.ts";
import { rejectedKilnError, thisLine } from "../util/kiln-error.ts";

describe("a deferred target whose code fails to load", () => {
  test("k.compile and k.compileModel name the target and the call's line", async () => {
    k.registerTarget(
      "lazy-broken",
      deferredFactory("lazy-broken", () => Promise.reject(new TypeError("Failed to fetch dynamically imported module: lazy-broken-3f2a.js"))),
    );
    const line = thisLine() + 1;
    const e = await rejectedKilnError(k.compile((x: k.Tensor) => x.add(1), [k.f32([2])], { target: "lazy-broken" }));
    expect(e.message).toContain("target 'lazy-broken': its code failed to load (Failed to fetch dynamically imported module: lazy-broken-3f2a.js)");
    expect(e.diag.code).toBe("target-unavailable");
    expect(e.diag.loc?.line).toBe(line);
    const net = k.nn.linear(2, 2);
    const modelLine = thisLine() + 1;
    const m = await rejectedKilnError(k.compileModel(net, { f: (x: k.Tensor) => net.call(x) }, [k.f32([1, 2])], { target: "lazy-broken" }));
    expect(m.message).toContain("target 'lazy-broken': its code failed to load");
    expect(m.diag.loc?.line).toBe(modelLine);
  });

  test("a loaded target's own factory errors pass through unchanged", async () => {
    const own = new k.KilnError({ code: "invalid-argument", message: "lazy-picky: no" });
    k.registerTarget(
      "lazy-picky",
      deferredFactory("lazy-picky", async () => ({
        factory: () => {
          throw own;
        },
      })),
    );
    const e = await rejectedKilnError(k.compile((x: k.Tensor) => x.add(1), [k.f32([2])], { target: "lazy-picky" }));
    expect(e.message).toContain("lazy-picky: no");
    expect(e.message).not.toContain("failed to load");
  });
});
