/* set-channels: `ethtool -L IFACE combined N` for the busybox guest (which has no ethtool):
 * the guest's virtio-net then uses N queue pairs (it starts with one per online CPU). Used by
 * tests/e2e/test_net.py's multiqueue tap test. Prints "set-channels: IFACE combined N". */
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static int channels(int s, const char *iface, struct ethtool_channels *ch)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    strncpy(ifr.ifr_name, iface, IFNAMSIZ - 1);
    ifr.ifr_data = (void *)ch;
    return ioctl(s, SIOCETHTOOL, &ifr);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: set-channels IFACE N\n");
        return 2;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ethtool_channels ch = {.cmd = ETHTOOL_GCHANNELS};
    if (s < 0 || channels(s, argv[1], &ch) < 0) {
        perror("set-channels: ETHTOOL_GCHANNELS");
        return 1;
    }
    ch.cmd = ETHTOOL_SCHANNELS;
    ch.combined_count = (unsigned)atoi(argv[2]);
    if (channels(s, argv[1], &ch) < 0) {
        perror("set-channels: ETHTOOL_SCHANNELS");
        return 1;
    }
    ch.cmd = ETHTOOL_GCHANNELS;
    if (channels(s, argv[1], &ch) < 0) {
        perror("set-channels: ETHTOOL_GCHANNELS");
        return 1;
    }
    printf("set-channels: %s combined %u (max %u)\n", argv[1], ch.combined_count, ch.max_combined);
    close(s);
    return 0;
}
