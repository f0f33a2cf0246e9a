/* PluginMagic is a header-only module; SwiftPM needs one source file to build a C target. */
#include "plugin_host_magic.h"
