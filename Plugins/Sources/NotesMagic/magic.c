#include <plugin_host_magic.h>

PLUGIN_HOST_MAGIC("example.notes", "1.0.0");
