/* Status strings and version, generated from the one list in ringlet.h. */
#include "ringlet.h"

const char *rl_strerror(rl_status_t status)
{
    switch (status) {
#define RL_STATUS_MSG_(name, value, msg) case name: return msg;
        RL_STATUS_MAP(RL_STATUS_MSG_)
#undef RL_STATUS_MSG_
    }
    return "unknown status";
}

const char *rl_status_name(rl_status_t status)
{
    switch (status) {
#define RL_STATUS_NAME_(name, value, msg) case name: return #name;
        RL_STATUS_MAP(RL_STATUS_NAME_)
#undef RL_STATUS_NAME_
    }
    return "RL_STATUS_UNKNOWN";
}

#define RL_STR2_(x) #x
#define RL_STR_(x) RL_STR2_(x)
const char *rl_version(void)
{
    return RL_STR_(RL_VERSION_MAJOR) "." RL_STR_(RL_VERSION_MINOR) "." RL_STR_(RL_VERSION_PATCH);
}
