// SPDX-License-Identifier: GPL-2.0
/*
 * XDP_PASS for the peer end of a lab veth: veth drops XDP_TX frames unless the peer also runs
 * an XDP program (see LAB.md). Used only by tests and benchmarks.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("xdp")
int lab_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
