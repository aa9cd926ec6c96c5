// SPDX-License-Identifier: GPL-2.0
/*
 * arpflood: sends one ARP request frame (built by the caller, given as hex) out of an
 * interface as fast as it can, through AF_PACKET with PACKET_QDISC_BYPASS and sendmmsg batches,
 * for at most SECONDS and at most MAX frames. Prints the number of frames sent and the CPU time
 * of the process in microseconds (user, system; the system part includes the softirq work —
 * veth delivery, XDP, the kernel's ARP — done in its context, with tick-based accounting).
 * Used only by bench/arp.ts, inside a network namespace the benchmark made.
 *
 *   arpflood IFNAME SECONDS MAX FRAME_HEX
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: arpflood IFNAME SECONDS MAX FRAME_HEX\n");
		return 2;
	}
	unsigned ifindex = if_nametoindex(argv[1]);
	double seconds = atof(argv[2]);
	long long max = atoll(argv[3]);
	const char *hex = argv[4];
	size_t len = strlen(hex) / 2;
	if (!ifindex || seconds <= 0 || seconds > 60 || max <= 0 || len < 14 || len > 1500) {
		fprintf(stderr, "arpflood: bad arguments\n");
		return 2;
	}
	unsigned char frame[1500];
	for (size_t i = 0; i < len; i++)
		sscanf(hex + 2 * i, "%2hhx", &frame[i]);

	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) {
		perror("socket");
		return 1;
	}
	int one = 1;
	if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) < 0)
		perror("PACKET_QDISC_BYPASS");
	struct sockaddr_ll addr = { 0 };
	addr.sll_family = AF_PACKET;
	addr.sll_ifindex = ifindex;
	addr.sll_halen = 6;
	memcpy(addr.sll_addr, frame, 6);

	struct mmsghdr msgs[BATCH];
	struct iovec iov = { .iov_base = frame, .iov_len = len };
	memset(msgs, 0, sizeof(msgs));
	for (int i = 0; i < BATCH; i++) {
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &addr;
		msgs[i].msg_hdr.msg_namelen = sizeof(addr);
	}
	long long sent = 0;
	double end = now() + seconds;
	while (sent < max) {
		int n = max - sent < BATCH ? (int)(max - sent) : BATCH;
		int r = sendmmsg(fd, msgs, n, 0);
		if (r > 0)
			sent += r;
		else if (r < 0 && errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
			perror("sendmmsg");
			break;
		}
		if (now() >= end)
			break;
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("%lld %lld %lld\n", sent, (long long)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec,
	       (long long)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec);
	close(fd);
	return 0;
}
