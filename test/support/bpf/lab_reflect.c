// SPDX-License-Identifier: GPL-2.0
/*
 * XDP_TX of every frame, unchanged, for benchmarks: the cheapest reply a link can carry. It gives
 * the with-replies ceiling of a link (what any XDP responder could reach at best, since the reply
 * itself crosses the link and is received by the peer), next to lab_drop's no-reply ceiling.
 * Used only by benchmarks.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int lab_reflect(struct xdp_md *ctx)
{
	return XDP_TX;
}
