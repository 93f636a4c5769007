#include "shim/cli.h"

#include <stddef.h>
#include <string.h>

struct string_flag {
    const char *name;
    size_t offset; /* of the const char * member in struct shim_cli_args */
};

static const struct string_flag string_flags[] = {
    {"namespace", offsetof(struct shim_cli_args, namespace_name)},
    {"address", offsetof(struct shim_cli_args, address)},
    {"publish-binary", offsetof(struct shim_cli_args, publish_binary)},
    {"id", offsetof(struct shim_cli_args, id)},
    {"bundle", offsetof(struct shim_cli_args, bundle)},
    {"socket", offsetof(struct shim_cli_args, socket)},
};

const char *shim_cli_usage(void)
{
    return "usage: containerd-shim-runhcs-v1 [-namespace ns] [-address addr] "
           "[-publish-binary path] [-id id] [-bundle dir] [-socket addr] [-debug] "
           "[start|delete]";
}

const char *shim_action_name(enum shim_action action)
{
    switch (action) {
    case SHIM_ACTION_START:
        return "start";
    case SHIM_ACTION_DELETE:
        return "delete";
    default:
        return "serve";
    }
}

static const struct string_flag *find_string_flag(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(string_flags) / sizeof(string_flags[0]); i++) {
        if (strlen(string_flags[i].name) == len && strncmp(string_flags[i].name, name, len) == 0)
            return &string_flags[i];
    }
    return NULL;
}

/* Go's strconv.ParseBool spellings. */
static int parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    static const char *const no[] = {"0", "f", "F", "false", "FALSE", "False"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

static int parse_action(const char *word, struct shim_cli_args *out, shim_error_t **err)
{
    if (strcmp(word, "start") == 0)
        out->action = SHIM_ACTION_START;
    else if (strcmp(word, "delete") == 0)
        out->action = SHIM_ACTION_DELETE;
    else
        return error_set(err, RPC_INVALID_ARGUMENT, "unknown action \"%s\" (want start or delete)",
                         word);
    return 0;
}

/* Handles argv[*i], a flag word; may consume argv[*i + 1] as its value. */
static int parse_flag(int argc, char **argv, int *i, struct shim_cli_args *out, shim_error_t **err)
{
    const char *arg = argv[*i];
    const char *name = arg + (arg[1] == '-' ? 2 : 1);
    const char *eq = strchr(name, '=');
    size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
    if (name_len == 0 || name[0] == '-' || name[0] == '=')
        return error_set(err, RPC_INVALID_ARGUMENT, "bad flag syntax: %s", arg);

    if (name_len == 5 && strncmp(name, "debug", 5) == 0) {
        if (eq == NULL) {
            out->debug = true;
            return 0;
        }
        if (parse_bool(eq + 1, &out->debug) < 0)
            return error_set(err, RPC_INVALID_ARGUMENT, "invalid boolean value \"%s\" for -debug",
                             eq + 1);
        return 0;
    }
    const struct string_flag *flag = find_string_flag(name, name_len);
    if (flag == NULL)
        return error_set(err, RPC_INVALID_ARGUMENT, "flag provided but not defined: -%.*s",
                         (int)name_len, name);
    const char *value = eq ? eq + 1 : NULL;
    if (value == NULL) {
        if (*i + 1 >= argc)
            return error_set(err, RPC_INVALID_ARGUMENT, "flag needs an argument: -%s", flag->name);
        value = argv[++*i];
    }
    *(const char **)((char *)out + flag->offset) = value;
    return 0;
}

int shim_cli_parse(int argc, char **argv, struct shim_cli_args *out, shim_error_t **err)
{
    *out = (struct shim_cli_args){.namespace_name = "",
                                  .address = "",
                                  .publish_binary = "",
                                  .id = "",
                                  .bundle = "",
                                  .socket = "",
                                  .action = SHIM_ACTION_SERVE};
    int i = 1;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] != '-' || arg[1] == '\0')
            break; /* first non-flag word: the action */
        if (parse_flag(argc, argv, &i, out, err) < 0)
            return -1;
    }
    if (i < argc) {
        if (parse_action(argv[i], out, err) < 0)
            return -1;
        i++;
    }
    if (i < argc)
        return error_set(err, RPC_INVALID_ARGUMENT, "unexpected argument \"%s\" after action %s",
                         argv[i], shim_action_name(out->action));
    return 0;
}
