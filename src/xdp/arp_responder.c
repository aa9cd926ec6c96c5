// SPDX-License-Identifier: GPL-2.0
/*
 * vipd XDP responder: answers ARP requests (RFC 826) and IPv6 Neighbor Solicitations
 * (RFC 4861 §7.1.1 validation, §7.2.4 answer) for the virtual IPs this node owns, before the
 * kernel stack sees them, by rewriting the request into the reply and sending it back (XDP_TX).
 *
 * What it owns:
 *   - `vips`: (ingress ifindex, family, address) -> MAC to answer with. Only listed VIPs on the
 *     listed interfaces are answered.
 *   - `liveness`: one entry { last heartbeat (CLOCK_MONOTONIC ns), window ns }. When the daemon
 *     stops refreshing it for longer than the window, the program stops answering, so a hung
 *     daemon stops attracting traffic (the idea of Cilium's l2_responder).
 *   - `counters`: per-CPU u64 counters, one per `enum counter` below: what was seen, answered,
 *     and why everything else was passed. Nothing is ever dropped: anything that is not a valid
 *     request for an owned VIP goes to the kernel untouched (XDP_PASS).
 *
 * One 802.1Q tag is understood and kept in the reply; stacked tags are passed. The layout of
 * `struct vip_key`, `struct vip_val`, `struct liveness` and `enum counter` is mirrored in
 * src/xdp/layout.ts: change both together.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in6.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

#define ETH_P_8021Q_ 0x8100
#define ETH_P_8021AD_ 0x88A8
#define ARPHRD_ETHER_ 1
#define ARPOP_REQUEST_ 1
#define ARPOP_REPLY_ 2
#define ND_NS 135
#define ND_NA 136
#define ND_OPT_SLLA 1
#define ND_OPT_TLLA 2
#define NA_FLAG_S 0x40
#define NA_FLAG_O 0x20
#define MAX_ND_LEN 256 /* longest NS we validate; longer ones go to the kernel */
#define MAX_ND_OPTS 8

/* Counter indexes; mirrored by COUNTERS in src/xdp/layout.ts. */
enum counter {
	C_SEEN = 0,            /* every frame the program ran on */
	C_ARP_REQUESTS,        /* well-formed ARP requests examined */
	C_ARP_REPLIES,         /* ARP replies sent */
	C_NS_REQUESTS,         /* valid Neighbor Solicitations examined */
	C_NA_REPLIES,          /* Neighbor Advertisements sent */
	C_PASS_NOT_ARP_OR_ND,  /* other ethertypes, other IPv6 traffic, other ICMPv6 */
	C_PASS_TRUNCATED,      /* a header ends beyond the frame */
	C_PASS_VLAN_STACKED,   /* more than one VLAN tag, or an 802.1ad S-tag */
	C_PASS_ARP_BAD_HW,     /* hardware type/length is not Ethernet/6 */
	C_PASS_ARP_BAD_PROTO,  /* protocol type/length is not IPv4/4 */
	C_PASS_ARP_NOT_REQUEST,/* replies and other operations */
	C_PASS_ARP_GRATUITOUS, /* sender IP == target IP */
	C_PASS_NS_BAD_HOPLIMIT,/* RFC 4861: hop limit must be 255 */
	C_PASS_NS_BAD_CODE,    /* RFC 4861: ICMP code must be 0 */
	C_PASS_NS_BAD_LENGTH,  /* ICMP length < 24, not a multiple of 8, or too long */
	C_PASS_NS_BAD_CHECKSUM,/* ICMPv6 checksum wrong */
	C_PASS_NS_BAD_TARGET,  /* multicast target */
	C_PASS_NS_BAD_OPTION,  /* zero-length or overrunning option */
	C_PASS_NS_BAD_DAD,     /* from :: but not to solicited-node, or carrying a source LLA */
	C_PASS_NS_BAD_DEST,    /* destination is neither the target nor its solicited-node group */
	C_PASS_NS_BAD_SOURCE,  /* multicast source address (RFC 4291 §2.7: never a source) */
	C_PASS_NOT_OWNED,      /* target is not an owned VIP on this interface */
	C_PASS_STALE,          /* the daemon's heartbeat is older than the window */
	C_PASS_ADJUST_FAILED,  /* the frame could not be resized for the reply */
	C_MAX,
};

struct vip_key {
	__u32 ifindex;
	__u8 family; /* 4 or 6 */
	__u8 pad[3]; /* always zero */
	__u8 addr[16]; /* IPv4 in the first 4 bytes, rest zero */
};

struct vip_val {
	__u8 mac[6];
	__u8 pad[2];
};

struct liveness {
	__u64 heartbeat_ns; /* CLOCK_MONOTONIC of the daemon's last refresh */
	__u64 window_ns;    /* 0: no gate */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct vip_key);
	__type(value, struct vip_val);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct liveness);
} liveness SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct arp_eth {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[6];
	__u8 spa[4];
	__u8 tha[6];
	__u8 tpa[4];
} __attribute__((packed));

struct nd_msg {
	__u8 type;
	__u8 code;
	__be16 csum;
	__u8 flags; /* NA: R S O; NS: reserved */
	__u8 reserved[3];
	struct in6_addr target;
};

struct nd_opt_lla {
	__u8 type;
	__u8 len; /* in 8-octet units */
	__u8 mac[6];
} __attribute__((packed));

static __always_inline int count(enum counter c)
{
	__u32 k = c;
	__u64 *v = bpf_map_lookup_elem(&counters, &k);
	if (v)
		*v += 1;
	return 0;
}

static __always_inline int pass(enum counter c)
{
	count(c);
	return XDP_PASS;
}

/*
 * The coarse clock (CLOCK_MONOTONIC_COARSE, the last tick) costs a few ns where the precise one
 * costs ~25 ns on this kind of VM; a tick is nothing against a window of seconds. The daemon
 * writes CLOCK_MONOTONIC, which may be ahead of the coarse clock by up to a tick: that is fresh.
 */
static __always_inline int alive(void)
{
	__u32 k = 0;
	struct liveness *l = bpf_map_lookup_elem(&liveness, &k);
	if (!l || l->window_ns == 0)
		return 1;
	__u64 now = bpf_ktime_get_coarse_ns();
	return now <= l->heartbeat_ns || now - l->heartbeat_ns <= l->window_ns;
}

static __always_inline void copy_mac(__u8 *dst, const __u8 *src)
{
	__builtin_memcpy(dst, src, 6);
}

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* One's-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1) for ICMPv6. */
static __always_inline __u64 pseudo_sum(const struct in6_addr *src, const struct in6_addr *dst,
					__u32 len)
{
	__u64 sum = 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		sum += src->in6_u.u6_addr32[i];
		sum += dst->in6_u.u6_addr32[i];
	}
	sum += bpf_htonl(len);
	sum += bpf_htonl(IPPROTO_ICMPV6);
	return sum;
}

static __always_inline int handle_arp(struct xdp_md *ctx, void *l3, void *end, struct ethhdr *eth)
{
	struct arp_eth *arp = l3;
	if ((void *)(arp + 1) > end)
		return pass(C_PASS_TRUNCATED);
	if (arp->htype != bpf_htons(ARPHRD_ETHER_) || arp->hlen != 6)
		return pass(C_PASS_ARP_BAD_HW);
	if (arp->ptype != bpf_htons(ETH_P_IP) || arp->plen != 4)
		return pass(C_PASS_ARP_BAD_PROTO);
	if (arp->op != bpf_htons(ARPOP_REQUEST_))
		return pass(C_PASS_ARP_NOT_REQUEST);
	__u32 spa, tpa;
	__builtin_memcpy(&spa, arp->spa, 4);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (spa == tpa)
		return pass(C_PASS_ARP_GRATUITOUS);
	count(C_ARP_REQUESTS);

	struct vip_key key = {};
	key.ifindex = ctx->ingress_ifindex;
	key.family = 4;
	__builtin_memcpy(key.addr, &tpa, 4);
	struct vip_val *val = bpf_map_lookup_elem(&vips, &key);
	if (!val)
		return pass(C_PASS_NOT_OWNED);
	if (!alive())
		return pass(C_PASS_STALE);

	/* Reply to the requester's hardware address, as the kernel does. */
	copy_mac(eth->h_dest, arp->sha);
	copy_mac(eth->h_source, val->mac);
	arp->op = bpf_htons(ARPOP_REPLY_);
	copy_mac(arp->tha, arp->sha);
	copy_mac(arp->sha, val->mac);
	__builtin_memcpy(arp->tpa, &spa, 4);
	__builtin_memcpy(arp->spa, &tpa, 4);
	count(C_ARP_REPLIES);
	return XDP_TX;
}

static __always_inline int is_solicited_node(const struct in6_addr *dst, const struct in6_addr *t)
{
	/* ff02::1:ffXX:XXXX (RFC 4291 §2.7.1) */
	return dst->in6_u.u6_addr32[0] == bpf_htonl(0xff020000) && dst->in6_u.u6_addr32[1] == 0 &&
	       dst->in6_u.u6_addr32[2] == bpf_htonl(1) && dst->in6_u.u6_addr8[12] == 0xff &&
	       dst->in6_u.u6_addr8[13] == t->in6_u.u6_addr8[13] &&
	       dst->in6_u.u6_addr8[14] == t->in6_u.u6_addr8[14] &&
	       dst->in6_u.u6_addr8[15] == t->in6_u.u6_addr8[15];
}

static __always_inline int in6_equal(const struct in6_addr *a, const struct in6_addr *b)
{
	return a->in6_u.u6_addr32[0] == b->in6_u.u6_addr32[0] &&
	       a->in6_u.u6_addr32[1] == b->in6_u.u6_addr32[1] &&
	       a->in6_u.u6_addr32[2] == b->in6_u.u6_addr32[2] &&
	       a->in6_u.u6_addr32[3] == b->in6_u.u6_addr32[3];
}

static __always_inline int in6_unspecified(const struct in6_addr *a)
{
	return (a->in6_u.u6_addr32[0] | a->in6_u.u6_addr32[1] | a->in6_u.u6_addr32[2] |
		a->in6_u.u6_addr32[3]) == 0;
}

/* Validates and answers a Neighbor Solicitation; `l2len` is 14 or 18 (tagged). */
static __always_inline int handle_ns(struct xdp_md *ctx, __u32 l2len)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (l2len != 14 && l2len != 18)
		return pass(C_PASS_NOT_ARP_OR_ND); /* unreachable: keeps the verifier's bounds simple */
	struct ipv6hdr *ip6 = data + l2len;
	if ((void *)(ip6 + 1) > end)
		return pass(C_PASS_TRUNCATED);
	if (ip6->nexthdr != IPPROTO_ICMPV6)
		return pass(C_PASS_NOT_ARP_OR_ND);
	struct nd_msg *nd = (void *)(ip6 + 1);
	if ((void *)nd + 4 > end)
		return pass(C_PASS_TRUNCATED);
	if (nd->type != ND_NS)
		return pass(C_PASS_NOT_ARP_OR_ND);
	/* RFC 4861 §7.1.1, in its order (the length before the checksum, which needs it). */
	if (ip6->hop_limit != 255)
		return pass(C_PASS_NS_BAD_HOPLIMIT);
	__u32 len = bpf_ntohs(ip6->payload_len);
	/* Bound len before any pointer math with it: older verifiers (Linux 6.1) refuse
	 * "math between pkt pointer and register with unbounded min value". */
	if (len > MAX_ND_LEN)
		return pass(C_PASS_NS_BAD_LENGTH);
	if ((void *)nd + len > end)
		return pass(C_PASS_TRUNCATED);
	if (len < sizeof(struct nd_msg) || (len & 7))
		return pass(C_PASS_NS_BAD_LENGTH);
	if ((void *)(nd + 1) > end)
		return pass(C_PASS_TRUNCATED);

	__u64 sum = pseudo_sum(&ip6->saddr, &ip6->daddr, len);
#pragma unroll
	for (__u32 i = 0; i < MAX_ND_LEN / 8; i++) {
		if (i * 8 >= len)
			break;
		__u32 *w = (void *)nd + i * 8;
		if ((void *)(w + 2) > end)
			return pass(C_PASS_TRUNCATED);
		sum += w[0];
		sum += w[1];
	}
	if (fold(sum) != 0xffff)
		return pass(C_PASS_NS_BAD_CHECKSUM);
	if (nd->code != 0)
		return pass(C_PASS_NS_BAD_CODE);
	if (nd->target.in6_u.u6_addr8[0] == 0xff)
		return pass(C_PASS_NS_BAD_TARGET);

	/* Options: every one has a length > 0 and fits; remember the source link-layer one. */
	__u8 *sll = 0;
	__u32 off = sizeof(struct nd_msg);
	for (int i = 0; i < MAX_ND_OPTS; i++) {
		if (off >= len)
			break;
		struct nd_opt_lla *opt = (void *)nd + (off & (MAX_ND_LEN - 1));
		if ((void *)opt + 2 > end)
			return pass(C_PASS_TRUNCATED);
		__u32 olen = (__u32)opt->len * 8;
		if (olen == 0 || off + olen > len)
			return pass(C_PASS_NS_BAD_OPTION);
		if (opt->type == ND_OPT_SLLA && olen == 8) {
			if ((void *)(opt + 1) > end)
				return pass(C_PASS_TRUNCATED);
			sll = opt->mac;
		}
		off += olen;
	}
	if (off < len)
		return pass(C_PASS_NS_BAD_OPTION); /* more options than we walk */

	if (ip6->saddr.in6_u.u6_addr8[0] == 0xff)
		return pass(C_PASS_NS_BAD_SOURCE);
	int dad = in6_unspecified(&ip6->saddr);
	if (dad && (!is_solicited_node(&ip6->daddr, &nd->target) || sll))
		return pass(C_PASS_NS_BAD_DAD);
	if (!in6_equal(&ip6->daddr, &nd->target) && !is_solicited_node(&ip6->daddr, &nd->target))
		return pass(C_PASS_NS_BAD_DEST);
	count(C_NS_REQUESTS);

	struct vip_key key = {};
	key.ifindex = ctx->ingress_ifindex;
	key.family = 6;
	__builtin_memcpy(key.addr, &nd->target, 16);
	struct vip_val *val = bpf_map_lookup_elem(&vips, &key);
	if (!val)
		return pass(C_PASS_NOT_OWNED);
	if (!alive())
		return pass(C_PASS_STALE);

	/* Everything the reply needs, before the frame is resized. */
	__u8 owner[6], peer[6];
	struct in6_addr target = nd->target, solicitor = ip6->saddr;
	struct ethhdr *eth = data;
	copy_mac(owner, val->mac);
	if (sll)
		copy_mac(peer, sll);
	else
		copy_mac(peer, eth->h_source);

	/* The NA: 24 bytes + target link-layer option (RFC 4861 §4.4). */
	__u32 na_len = sizeof(struct nd_msg) + sizeof(struct nd_opt_lla);
	int delta = (int)(l2len + sizeof(struct ipv6hdr) + na_len) - (int)(end - data);
	if (delta && bpf_xdp_adjust_tail(ctx, delta))
		return pass(C_PASS_ADJUST_FAILED);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if (l2len == 14) {
		ip6 = data + 14;
	} else {
		ip6 = data + 18;
	}
	nd = (void *)(ip6 + 1);
	struct nd_opt_lla *tlla = (void *)(nd + 1);
	if ((void *)(tlla + 1) > end)
		return pass(C_PASS_ADJUST_FAILED);

	if (dad) {
		/* RFC 4861 §7.2.4: to all-nodes, Solicited flag clear. */
		eth->h_dest[0] = 0x33;
		eth->h_dest[1] = 0x33;
		eth->h_dest[2] = 0;
		eth->h_dest[3] = 0;
		eth->h_dest[4] = 0;
		eth->h_dest[5] = 1;
		__builtin_memset(&ip6->daddr, 0, 16);
		ip6->daddr.in6_u.u6_addr8[0] = 0xff;
		ip6->daddr.in6_u.u6_addr8[1] = 0x02;
		ip6->daddr.in6_u.u6_addr8[15] = 0x01;
	} else {
		copy_mac(eth->h_dest, peer);
		ip6->daddr = solicitor;
	}
	copy_mac(eth->h_source, owner);
	ip6->saddr = target;
	ip6->payload_len = bpf_htons(na_len);
	ip6->hop_limit = 255;
	nd->type = ND_NA;
	nd->code = 0;
	nd->csum = 0;
	nd->flags = dad ? NA_FLAG_O : (NA_FLAG_S | NA_FLAG_O);
	nd->reserved[0] = 0;
	nd->reserved[1] = 0;
	nd->reserved[2] = 0;
	nd->target = target;
	tlla->type = ND_OPT_TLLA;
	tlla->len = 1;
	copy_mac(tlla->mac, owner);

	sum = pseudo_sum(&ip6->saddr, &ip6->daddr, na_len);
	__u32 *w = (void *)nd;
#pragma unroll
	for (int i = 0; i < 8; i++)
		sum += w[i];
	nd->csum = ~fold(sum);
	count(C_NA_REPLIES);
	return XDP_TX;
}

SEC("xdp")
int vipd_arp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	count(C_SEEN);
	if ((void *)(eth + 1) > end)
		return pass(C_PASS_TRUNCATED);
	__u16 proto = eth->h_proto;
	__u32 l2len = sizeof(*eth);
	if (proto == bpf_htons(ETH_P_8021AD_))
		return pass(C_PASS_VLAN_STACKED); /* an S-tag: QinQ */
	if (proto == bpf_htons(ETH_P_8021Q_)) {
		__be16 *inner = data + l2len + 2;
		if ((void *)(inner + 1) > end)
			return pass(C_PASS_TRUNCATED);
		proto = *inner;
		l2len += 4;
		if (proto == bpf_htons(ETH_P_8021Q_) || proto == bpf_htons(ETH_P_8021AD_))
			return pass(C_PASS_VLAN_STACKED);
	}
	if (proto == bpf_htons(ETH_P_ARP)) {
		if (l2len == 14)
			return handle_arp(ctx, data + 14, end, eth);
		return handle_arp(ctx, data + 18, end, eth);
	}
	if (proto == bpf_htons(ETH_P_IPV6))
		return handle_ns(ctx, l2len);
	return pass(C_PASS_NOT_ARP_OR_ND);
}
