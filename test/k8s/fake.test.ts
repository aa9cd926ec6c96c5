/**
 * The Kubernetes-mode scenarios against the faithful in-process API server (test/k8s/apiserver.ts),
 * driven through @kubernetes/client-node over TLS with a bearer token.
 */
import { fakeCluster } from "./harness.ts";
import { defineScenarios } from "./scenarios.ts";

defineScenarios("test API server", () => fakeCluster());
