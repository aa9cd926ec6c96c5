// SPDX-License-Identifier: GPL-2.0
/*
 * XDP_DROP for benchmarks: counts replies on the client veth (ethtool -S xdp counters) without
 * the client's stack, and gives the no-reply ceiling of a link. Used only by benchmarks.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int lab_drop(struct xdp_md *ctx)
{
	return XDP_DROP;
}
