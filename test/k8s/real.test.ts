/**
 * The same Kubernetes-mode scenarios against a real kube-apiserver v1.20.2 with etcd on loopback
 * (built by scripts/build-kube-apiserver.sh from Debian's source package). If the binary or etcd
 * is missing, every scenario FAILS (it never skips).
 *
 * What 1.20 lacks, and how the suite adapts (printed below): EndpointSlice is served only as
 * discovery.k8s.io/v1beta1 (vipd is run with --endpointslice-version v1beta1; endpoints carry
 * topology["kubernetes.io/hostname"]); dual-stack Services need the IPv6DualStack feature gate
 * (enabled, with an IPv4 and an IPv6 service range). No scenario is skipped.
 */
import { realCluster } from "./harness.ts";
import { defineScenarios } from "./scenarios.ts";

console.log(
  "k8s real tier: kube-apiserver v1.20.2 — EndpointSlice via discovery.k8s.io/v1beta1 (v1 is 1.21+); dual-stack via --feature-gates=IPv6DualStack=true; no scenario skipped",
);
defineScenarios("kube-apiserver 1.20.2", () => realCluster());

defineScenarios(
  "kube-apiserver 1.20.2 + RBAC, vipd as the k3s addon's ServiceAccount",
  () => realCluster({ rbac: true }),
  {
    only: ["pools and Services", "externalTrafficPolicy Local", "controller restarted"],
  },
);
