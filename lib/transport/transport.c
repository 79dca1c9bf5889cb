/* The one explicit list of transport backends. */
#include "transport/transport.h"

#include <string.h>

extern const rl_tp_ops_t rl_tp_shm_ops;
#ifdef RL_HAVE_VERBS
extern const rl_tp_ops_t rl_tp_verbs_ops;
#endif
#ifdef RL_HAVE_OFI
extern const rl_tp_ops_t rl_tp_ofi_ops;
#endif

/* Order of preference for "auto": RDMA hardware first. */
static const rl_tp_ops_t *const backends[] = {
#ifdef RL_HAVE_VERBS
    &rl_tp_verbs_ops,
#endif
#ifdef RL_HAVE_OFI
    &rl_tp_ofi_ops,
#endif
    &rl_tp_shm_ops, /* only when every rank is on this host; see shm/shm.c */
    NULL,
};

const rl_tp_ops_t *rl_transport_find(const char *name)
{
    for (int i = 0; backends[i]; i++) {
        if (!strcmp(name, backends[i]->name))
            return backends[i];
    }
    return NULL;
}

const rl_tp_ops_t *rl_transport_at(int i)
{
    return i >= 0 && i < (int)(sizeof(backends) / sizeof(backends[0])) ? backends[i] : NULL;
}

const char *rl_transport_list(void)
{
    static char list[128];
    if (!list[0]) {
        for (int i = 0; backends[i]; i++) {
            if (i)
                strncat(list, ",", sizeof(list) - strlen(list) - 1);
            strncat(list, backends[i]->name, sizeof(list) - strlen(list) - 1);
        }
    }
    return list;
}
