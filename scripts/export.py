"""Export a style model: safetensors (default), ONNX, TorchScript, ExecuTorch or a web page folder.

    python scripts/export.py ckpt=logs/train/runs/<style>/<time>/checkpoints/last.ckpt [output=out.safetensors]
    python scripts/export.py ckpt=checkpoints/starry_night.safetensors format=onnx [output=starry_night.onnx]
    python scripts/export.py ckpt=mosaic.pth format=torchscript [overwrite=true] [exporter=auto|dynamo|legacy] [opset=N]
    python scripts/export.py ckpt=checkpoints/starry_night.safetensors format=executorch [max_size=1024]
    python scripts/export.py ckpt=checkpoints/starry_night.safetensors format=web [output=folder/] [ort_dist=<onnxruntime-web dist/>]

``ckpt``: any model file with a PyTorch network (``.safetensors`` style model, Lightning
``.ckpt``, pytorch/examples ``.pth``/``.model``; kind detected from the content).
``format=safetensors`` writes the transform net's weights with metadata; ``onnx`` and
``torchscript`` write a network with dynamic batch, height and width (float32 RGB in
[0, 1], NCHW), check it against PyTorch on two sizes (one odd) and fail if the max
difference exceeds 1e-4. Without ``output`` the file goes beside the checkpoint as
``<style>.<ext>``; an existing file is never replaced unless ``overwrite=true`` (a
numbered name is used instead). Details: ``fast_style/io/export.py``. ONNX needs
``pip install -e ".[export]"``. ``format=web`` writes a static page folder that runs the
model in the browser (onnxruntime-web; fp16 weights where they meet PSNR >= 40 dB against
fp32); ``ort_dist`` copies a local onnxruntime-web into it: ``fast_style/io/web_export.py``,
docs/deploy.md "In the browser". ``format=executorch`` writes a ``.pte`` for phones (XNNPACK
delegate, one image of up to ``max_size`` x ``max_size``, checked in executorch's runtime
within 1e-3); it needs ``pip install -e ".[executorch]"``: docs/deploy.md "On phones".
"""

from omegaconf import DictConfig, OmegaConf

from fast_style.cli import entry
from fast_style.config import ExportConfig


@entry(config_name="export", schema=ExportConfig)
def main(cfg: DictConfig) -> None:
    from fast_style.io.export import ExportError, export_model

    args = OmegaConf.to_object(cfg)
    if args.max_size is not None and args.format != "executorch":
        raise ExportError(f"max_size={args.max_size} is an option of format=executorch only (format={args.format})")
    if args.format == "web":
        from fast_style.inference.precision import Agreement
        from fast_style.io.web_export import export_web

        print(export_web(args.ckpt, args.output, overwrite=args.overwrite, ort_dist=args.ort_dist,
                         judge=Agreement.of, exporter=args.exporter, opset=args.opset).line())
        return
    if args.ort_dist is not None:
        raise ExportError(f"ort_dist={args.ort_dist} is an option of format=web only (format={args.format})")
    result = export_model(args.ckpt, args.format, args.output, overwrite=args.overwrite,
                          exporter=args.exporter, opset=args.opset, max_size=args.max_size)
    print(result.line())


if __name__ == "__main__":
    main()
