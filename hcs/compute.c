#include "hcs/compute.h"

const char *hcs_state_name(enum hcs_state s)
{
    switch (s) {
    case HCS_STATE_CREATED:
        return "Created";
    case HCS_STATE_STARTING:
        return "Starting";
    case HCS_STATE_RUNNING:
        return "Running";
    case HCS_STATE_STOPPING:
        return "Stopping";
    case HCS_STATE_STOPPED:
        return "Stopped";
    }
    return "Unknown";
}

const char *hcs_exit_type_name(enum hcs_exit_type t)
{
    switch (t) {
    case HCS_EXIT_SHUTDOWN:
        return "Shutdown";
    case HCS_EXIT_TERMINATE:
        return "Terminate";
    case HCS_EXIT_UNEXPECTED:
        return "UnexpectedExit";
    }
    return "Invalid";
}
