// tc (cls_bpf, direct-action) program for tests and benchmarks: drops BFD Control packets
// (UDP destination port 3784 single-hop, 4784 multihop) over IPv4 and IPv6, passes everything
// else. Lets a test cut BFD while the link — and BGP's TCP session — stay up.
// Build: clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c drop_bfd.c -o drop_bfd.o
// Use:   tc qdisc add dev X clsact; tc filter add dev X ingress bpf da obj drop_bfd.o sec tc
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

static __always_inline int is_bfd_port(struct udphdr *udp) {
  __u16 d = bpf_ntohs(udp->dest);
  return d == 3784 || d == 4784;
}

SEC("tc")
int drop_bfd(struct __sk_buff *skb) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return TC_ACT_OK;
  if (eth->h_proto == bpf_htons(ETH_P_IP)) {
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP) return TC_ACT_OK;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;
    if ((void *)(udp + 1) > end) return TC_ACT_OK;
    return is_bfd_port(udp) ? TC_ACT_SHOT : TC_ACT_OK;
  }
  if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP) return TC_ACT_OK;
    struct udphdr *udp = (void *)(ip6 + 1);
    if ((void *)(udp + 1) > end) return TC_ACT_OK;
    return is_bfd_port(udp) ? TC_ACT_SHOT : TC_ACT_OK;
  }
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
