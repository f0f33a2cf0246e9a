/*
 * The plugin magic block: a plain C struct that every plugin library exports as the data symbol
 * `plugin_host_magic`. The host reads it straight from the ELF file, before dlopen, so a plugin built
 * against another SDK ABI, another Swift toolchain or another target is refused before any of its code
 * (Swift type registration included) runs. Every field is inline (no pointers), so the block needs no
 * relocation and reads the same from the file as from memory.
 *
 * A plugin declares it with one line in a C file of its package:
 *
 *     #include <plugin_host_magic.h>
 *     PLUGIN_HOST_MAGIC("example.notes", "1.0.0");
 */
#ifndef PLUGIN_HOST_MAGIC_H
#define PLUGIN_HOST_MAGIC_H

#include <stdint.h>

/* Bumped whenever a change to PluginSDK breaks binary compatibility between host and plugin. */
#define PLUGIN_HOST_SDK_ABI 3u
/* The semantic version of PluginSDK; manifests state which range of it they support. */
#define PLUGIN_HOST_SDK_VERSION "1.3.0"
/* Bumped when the layout of `struct plugin_host_magic` itself changes. */
#define PLUGIN_HOST_MAGIC_LAYOUT 1u
#define PLUGIN_HOST_MAGIC_TAG "PLUGIN-HOST-MAGC"

/* The Swift toolchain: its bundled clang names the exact llvm-project commit, which differs for every
   Swift release, so equal strings mean plugin and host were compiled by the same Swift compiler. */
#define PLUGIN_HOST_TOOLCHAIN "swift-toolchain clang " __clang_version__

#if defined(__x86_64__)
#define PLUGIN_HOST_ARCH "x86_64"
#elif defined(__aarch64__)
#define PLUGIN_HOST_ARCH "aarch64"
#else
#define PLUGIN_HOST_ARCH "unknown"
#endif
#if defined(__linux__) && defined(__GLIBC__)
#define PLUGIN_HOST_OS "unknown-linux-gnu"
#elif defined(__linux__)
#define PLUGIN_HOST_OS "unknown-linux"
#else
#define PLUGIN_HOST_OS "unknown-os"
#endif
#define PLUGIN_HOST_TRIPLE PLUGIN_HOST_ARCH "-" PLUGIN_HOST_OS

struct plugin_host_magic {
    char tag[16];             /* PLUGIN_HOST_MAGIC_TAG, not NUL-terminated */
    uint32_t layout;          /* PLUGIN_HOST_MAGIC_LAYOUT */
    uint32_t sdk_abi;         /* PLUGIN_HOST_SDK_ABI at the plugin's build */
    char sdk_version[32];     /* PLUGIN_HOST_SDK_VERSION at the plugin's build */
    char toolchain[192];      /* PLUGIN_HOST_TOOLCHAIN at the plugin's build */
    char triple[64];          /* PLUGIN_HOST_TRIPLE at the plugin's build */
    char plugin_id[128];      /* the manifest's `id` */
    char plugin_version[64];  /* the manifest's `version` */
};

#define PLUGIN_HOST_MAGIC(ID, VERSION)                                                          \
    __attribute__((used, visibility("default")))                                                \
    const struct plugin_host_magic plugin_host_magic = {                                        \
        PLUGIN_HOST_MAGIC_TAG, PLUGIN_HOST_MAGIC_LAYOUT, PLUGIN_HOST_SDK_ABI,                    \
        PLUGIN_HOST_SDK_VERSION, PLUGIN_HOST_TOOLCHAIN, PLUGIN_HOST_TRIPLE, ID, VERSION          \
    }

/* The host's own values, compiled by the toolchain that compiles the host. */
static inline struct plugin_host_magic plugin_host_magic_of_this_build(void) {
    struct plugin_host_magic magic = {
        PLUGIN_HOST_MAGIC_TAG, PLUGIN_HOST_MAGIC_LAYOUT, PLUGIN_HOST_SDK_ABI,
        PLUGIN_HOST_SDK_VERSION, PLUGIN_HOST_TOOLCHAIN, PLUGIN_HOST_TRIPLE, "", ""
    };
    return magic;
}

#endif
