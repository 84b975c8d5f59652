"""Static files storage for DEBUG=0: WhiteNoise's compressed manifest storage
that also rewrites the relative imports of JavaScript modules to hashed names,
so a cached page script never loads a module of another release."""

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True
