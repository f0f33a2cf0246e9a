#include <plugin_host_magic.h>

PLUGIN_HOST_MAGIC("test.faulty", "1.0.0");
