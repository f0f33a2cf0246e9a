#include <plugin_host_magic.h>

PLUGIN_HOST_MAGIC("example.audit", "1.0.0");
