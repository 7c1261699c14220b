"""The client core every front end shares: bytes in (`intake`), faces found (`faces`) and cut by the
one crop rule (`facecrop`, which training imports too), quality warnings (`quality`), the model reached through a
`Detector` made by `detector.make_detector` (its gRPC implementation in `grpc_client`, wire protos in `protos`), the
steps from bytes to a `Verdict` (`analyze`, `workers`), the verdict and its words (`verdict`), the PDF report
(`report`, `pdffonts`, `fonts/`) and the boxes drawn on the image (`overlay`), with one typed configuration
(`config`) and domain errors whose `user_message` the front ends show (`errors`). Video clips take the same road
through `video` (sniffing, caps, frame sampling), `tracks`, `aggregate` and `clip`, to a `ClipVerdict`
(`clip_verdict`) and its PDF (`clip_report`). It imports no front end, and
importing it loads no model."""
