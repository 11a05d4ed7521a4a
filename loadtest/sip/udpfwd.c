/*
 * udpfwd: the "kernel limit" device under test of loadtest/sip/run.sh.
 *
 * A stateless UDP relay on ONE socket (like a single-worker SIP proxy or SBC):
 *   datagram from the backend (UAS) address  -> sent to the last seen client
 *   datagram from anyone else (the UAC)      -> sent to the backend, sender remembered
 * Nothing is parsed or rewritten. SIPp in UDP mode sends every message of a
 * call to the address the call came from (UAS) or to the remote host of its
 * command line (UAC), never to Via/Contact, so every message of the call
 * (INVITE, 180, 200, ACK, BYE, 200) passes through here exactly once: the
 * same relayed messages per call as a proxy, with zero SIP work.
 * Batches with recvmmsg/sendmmsg (up to 64 datagrams per system call).
 *
 * usage: udpfwd LISTEN_IP:PORT BACKEND_IP:PORT
 * Prints counters on SIGTERM/SIGINT and exits.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXDG 65536

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static int parse(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *c = strrchr(s, ':');
	if (!c || (size_t)(c - s) >= sizeof host)
		return -1;
	memcpy(host, s, c - s);
	host[c - s] = 0;
	memset(a, 0, sizeof *a);
	a->sin_family = AF_INET;
	a->sin_port = htons((unsigned short)atoi(c + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in me, backend, client;
	if (argc != 3 || parse(argv[1], &me) || parse(argv[2], &backend)) {
		fprintf(stderr, "usage: %s LISTEN_IP:PORT BACKEND_IP:PORT\n", argv[0]);
		return 2;
	}
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	int buf = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0) {
		perror("bind");
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_sig }; /* no SA_RESTART: recvmmsg returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	static char bufs[BATCH][MAXDG];
	struct iovec iov[BATCH];
	struct sockaddr_in from[BATCH];
	struct mmsghdr in[BATCH], out[BATCH];
	int have_client = 0;
	unsigned long long to_backend = 0, to_client = 0, dropped = 0, batches = 0;
	memset(&client, 0, sizeof client);

	while (!stop) {
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = bufs[i];
			iov[i].iov_len = MAXDG;
			memset(&in[i].msg_hdr, 0, sizeof in[i].msg_hdr);
			in[i].msg_hdr.msg_iov = &iov[i];
			in[i].msg_hdr.msg_iovlen = 1;
			in[i].msg_hdr.msg_name = &from[i];
			in[i].msg_hdr.msg_namelen = sizeof from[i];
		}
		int n = recvmmsg(fd, in, BATCH, MSG_WAITFORONE, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("recvmmsg");
			break;
		}
		batches++;
		int m = 0;
		for (int i = 0; i < n; i++) {
			struct sockaddr_in *src = &from[i];
			struct sockaddr_in *dst;
			if (src->sin_addr.s_addr == backend.sin_addr.s_addr && src->sin_port == backend.sin_port) {
				if (!have_client) {
					dropped++;
					continue;
				}
				dst = &client;
				to_client++;
			} else {
				client = *src; /* copy: later datagrams of the batch may change it */
				have_client = 1;
				dst = &backend;
				to_backend++;
			}
			iov[i].iov_len = in[i].msg_len;
			memset(&out[m].msg_hdr, 0, sizeof out[m].msg_hdr);
			out[m].msg_hdr.msg_iov = &iov[i];
			out[m].msg_hdr.msg_iovlen = 1;
			/* dst of a client-bound datagram must be the client as of now */
			if (dst == &client) {
				from[i] = client;
				dst = &from[i];
			}
			out[m].msg_hdr.msg_name = dst;
			out[m].msg_hdr.msg_namelen = sizeof *dst;
			m++;
		}
		for (int off = 0; off < m;) {
			int k = sendmmsg(fd, out + off, m - off, 0);
			if (k < 0) {
				if (errno == EINTR)
					continue;
				dropped += m - off; /* e.g. ENOBUFS/EAGAIN: count and move on */
				break;
			}
			off += k;
		}
	}
	fprintf(stderr, "udpfwd: to_backend %llu to_client %llu dropped %llu batches %llu\n",
		to_backend, to_client, dropped, batches);
	return 0;
}
