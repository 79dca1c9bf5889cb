/* Sealed memfd segments and their hand-over (see memfd.h). */
#include "transport/shm/memfd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void sock_name(const uint8_t token[RL_MEMFD_TOKEN], struct sockaddr_un *a, socklen_t *len)
{
    static const char hex[] = "0123456789abcdef";
    memset(a, 0, sizeof(*a));
    a->sun_family = AF_UNIX;
    char *p = a->sun_path + 1; /* abstract: leading NUL, no file */
    p += sprintf(p, "ringlet-shm-");
    for (int i = 0; i < RL_MEMFD_TOKEN; i++) {
        *p++ = hex[token[i] >> 4];
        *p++ = hex[token[i] & 15];
    }
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)(p - a->sun_path));
}

int rl_memfd_random(void *p, size_t n) { return getrandom(p, n, 0) == (ssize_t)n ? 0 : -1; }

int rl_memfd_create(const char *name, size_t len, int *fd, void **map)
{
    int f = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (f < 0)
        return -1;
    void *p = MAP_FAILED;
    if (ftruncate(f, (off_t)len) == 0)
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    /* Sealed after our own writable mapping: peers can map it only
     * read-only and nobody can change its size (no SIGBUS under a peer). */
    if (p == MAP_FAILED ||
        fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL)) {
        int e = errno;
        if (p != MAP_FAILED)
            munmap(p, len);
        close(f);
        errno = e;
        return -1;
    }
    *fd = f;
    *map = p;
    return 0;
}

int rl_memfd_listen(uint8_t token[RL_MEMFD_TOKEN])
{
    if (rl_memfd_random(token, RL_MEMFD_TOKEN))
        return -1;
    struct sockaddr_un a;
    socklen_t alen;
    sock_name(token, &a, &alen);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (bind(s, (struct sockaddr *)&a, alen) || listen(s, SOMAXCONN)) {
        int e = errno;
        close(s);
        errno = e;
        return -1;
    }
    return s;
}

int rl_memfd_send(const uint8_t token[RL_MEMFD_TOKEN], const void *msg, size_t len, int fd)
{
    struct sockaddr_un a;
    socklen_t alen;
    sock_name(token, &a, &alen);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    if (connect(s, (struct sockaddr *)&a, alen)) {
        int e = errno;
        close(s);
        errno = e;
        return e == EAGAIN || e == EINTR ? 1 : -1;
    }
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof(cbuf));
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    ssize_t r = sendmsg(s, &mh, MSG_NOSIGNAL);
    int e = errno;
    close(s);
    if (r == (ssize_t)len)
        return 0;
    errno = r < 0 ? e : EIO;
    return -1;
}

int rl_memfd_recv(int s, void *msg, size_t len, uid_t uid, int *fd, pid_t *pid)
{
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
    ssize_t r = recvmsg(s, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    int f = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); r > 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&f, CMSG_DATA(cm), sizeof(int));
    }
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    int cred_ok = !getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) && cr.uid == uid;
    if (f >= 0 && (r != (ssize_t)len || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || !cred_ok)) {
        close(f);
        f = -1;
    }
    *fd = f;
    *pid = cred_ok ? cr.pid : -1;
    return 1;
}

const char *rl_memfd_check(int fd, size_t len)
{
    struct stat sb;
    int seals = fcntl(fd, F_GET_SEALS);
    int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    if (seals < 0 || (seals & need) != need)
        return "an fd that is not a sealed memfd";
    if (fstat(fd, &sb) || (size_t)sb.st_size != len)
        return "a segment of the wrong size";
    return NULL;
}

void rl_memfd_boot_id(uint8_t out[16])
{
    char s[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    memset(out, 0, 16);
    if (f) {
        if (!fgets(s, sizeof(s), f))
            s[0] = '\0';
        fclose(f);
    }
    for (int i = 0, j = 0; s[i] && j < 32; i++) {
        int v = s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : s[i] >= 'a' && s[i] <= 'f' ? s[i] - 'a' + 10 : -1;
        if (v < 0)
            continue;
        out[j / 2] |= (uint8_t)(j % 2 ? v : v << 4);
        j++;
    }
}
