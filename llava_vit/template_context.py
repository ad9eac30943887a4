"""The copier template's Jinja extension at the import path every template version names in copier.yml
(`llava_vit.template_context.LlavaViTTemplateExtension`): old templates render with it during `copier update`."""

from .scaffold.context import LlavaViTTemplateExtension

__all__ = ["LlavaViTTemplateExtension"]
