"""Domain errors of the client core: each carries a message fit to show a user, never a stack trace."""
from __future__ import annotations


class DetectorError(Exception):
    """Base of every error a front end must turn into friendly words (read `.user_message`)."""

    default_message = "Something went wrong while checking this image. Please try again."

    def __init__(self, user_message: str | None = None, detail: str | None = None) -> None:
        self.user_message = user_message or self.default_message
        self.detail = detail or self.user_message
        super().__init__(self.detail)


class InvalidImage(DetectorError):
    """The upload cannot be judged; the message tells the user what to send instead."""

    default_message = "This file cannot be checked. Please send a JPEG, PNG or WebP photo."


class EmptyFile(InvalidImage):
    """Zero bytes arrived."""

    default_message = "The file is empty. Please send a photo (JPEG, PNG or WebP)."


class NotAnImage(InvalidImage):
    """The bytes are not a JPEG, PNG or WebP image."""

    default_message = "This file is not an image we can read. Please send a JPEG, PNG or WebP photo."


class CorruptImage(InvalidImage):
    """The image is truncated or its data is broken."""

    default_message = ("The image file is damaged or incomplete (perhaps the upload was cut off). "
                       "Please send it again or try another copy.")


class FileTooLarge(InvalidImage):
    """The upload is over the byte limit."""

    default_message = "The file is too large. Please send an image under 20 MB."


class ImageTooLarge(InvalidImage):
    """The image has more pixels than the limit (a decompression bomb or a huge scan)."""

    default_message = "The image has too many pixels to check. Please send a smaller photo (under 50 megapixels)."


class ImageTooSmall(InvalidImage):
    """The image is too small to judge reliably."""

    default_message = "The image is too small to judge. Please send a larger photo (at least 64 pixels on each side)."


class DetectorUnavailable(DetectorError):
    """The model server is down, unreachable or too slow to answer in time."""

    default_message = ("The detector is not reachable right now or took too long to answer. "
                       "Please try again in a minute.")


class ModelError(DetectorError):
    """The model server answered, but with an error (bad request, missing model, internal error)."""

    default_message = "The detector could not process this image. Please try another photo."


class InvalidVideo(InvalidImage):
    """A video upload that cannot be checked; the message says why and what to send instead."""

    default_message = "This video cannot be checked. Please send an MP4, MOV, WebM, MKV or animated GIF clip."


class NotAVideo(InvalidVideo):
    """The bytes are not a container we read (or FFmpeg cannot identify them)."""

    default_message = "This file is not a video we can read. Please send an MP4, MOV, WebM, MKV or animated GIF clip."


class NoVideoStream(InvalidVideo):
    """The container holds no video stream (audio only, subtitles, data)."""

    default_message = "This file has no video in it (perhaps it is audio only). Please send a clip with a picture."


class CorruptVideo(InvalidVideo):
    """The container or its video stream is truncated or broken."""

    default_message = ("The video file is damaged or incomplete (perhaps the upload was cut off). "
                       "Please send it again or try another copy.")


class VideoFileTooLarge(InvalidVideo, FileTooLarge):
    """The video upload is over the byte limit."""

    default_message = "The video file is too large. Please send a clip under 20 MB."


class VideoTooLong(InvalidVideo):
    """The clip lasts longer than the duration cap (read from the container, before any decoding)."""

    default_message = "The clip is too long to check. Please send a clip under 5 minutes, or cut the part to check."


class VideoTooLarge(InvalidVideo):
    """The clip's frames have more pixels than the resolution cap."""

    default_message = "The clip's picture is too large to check. Please send a clip of at most 4K (3840x2160)."


class VideoTooManyFrames(InvalidVideo):
    """Checking the clip would mean decoding (or indexing) more frames than the cap allows."""

    default_message = "The clip has too many frames to check. Please send a shorter clip."
