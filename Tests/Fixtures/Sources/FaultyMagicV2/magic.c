#include <plugin_host_magic.h>

PLUGIN_HOST_MAGIC("test.faulty", "2.0.0");
