// The host's API includes the formats it reads (manifests, library inspection, the remote envelope).
@_exported import PluginHostFormats
