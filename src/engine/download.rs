//! One file, one try: request (with `Range` + `If-Range` when resuming), decide from the
//! response whether to append, restart from zero or give up, stream the body to the `.part`
//! in batches (see `writer::BodyWriter`), verify, and rename into place.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use hyper::header::{self, HeaderMap};

use super::client;
use super::event::EngineEvent;
use super::fault;
use super::http::{
    content_disposition_filename, is_strong_etag, parse_content_range, parse_retry_after,
    parse_unsatisfied_range,
};
use super::part::{self, PartFile};
use super::worker::TaskCtx;
use super::writer::{BodyWriter, WriteError, WriterReport};
use crate::model::{FileEntry, PlacedFile};
use crate::names::sanitize_file_name;
use crate::text::{escape_controls, redact_url};

/// Progress events per file are sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Why one try did not finish the file.
#[derive(Debug, Clone, PartialEq)]
pub enum FileError {
    /// Worth another try (connection error, timeout, 5xx, 408, 429).
    Retry {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Will not get better by retrying (4xx, checksum, disk full).
    Fatal(String),
    /// The stop signal fired (cancel, lost claim, shutdown).
    Stopped,
}

impl FileError {
    fn retry(message: impl Into<String>) -> FileError {
        FileError::Retry {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// What the try decided about where the bytes start.
enum Start {
    Append(u64),
    FromZero(String),
}

/// Downloads `file` (updating it in place: destination, validators, durable offset).
///
/// The request and the decisions before the body (`begin`) and the ends after it are boxed:
/// their state lives only while they run, and every download's future is sized for streaming
/// alone (1,000 downloads pay it 1,000 times). The transfer is held here, once: the body's
/// stream works on it by reference.
pub async fn fetch(ctx: &TaskCtx, file: &mut FileEntry) -> Result<(), FileError> {
    let Some(mut transfer) = Box::pin(begin(ctx, file)).await? else {
        return Ok(());
    };
    let streamed = stream_body(ctx, file, &mut transfer).await;
    let Transfer { dest, writer, .. } = transfer;
    match streamed {
        Ok(received) => {
            file.bytes_done = file.bytes_done.max(writer.durable());
            Box::pin(verify_and_finalize(ctx, file, writer, &dest, received)).await
        }
        Err(Cut::Disk(error)) => {
            file.bytes_done = file.bytes_done.max(writer.durable());
            Err(error)
        }
        Err(Cut::Body(failure)) => Err(Box::pin(keep_what_arrived(file, writer, failure)).await),
    }
}

/// Why a body's stream ended before the body did.
enum Cut {
    /// A write to the `.part` failed: its durable offset is what there is.
    Disk(FileError),
    /// The body broke off, stalled or was stopped: what arrived is to be kept.
    Body(FileError),
}

/// A body about to stream into its `.part`.
struct Transfer {
    /// The URL's host, for messages.
    host: String,
    dest: PathBuf,
    writer: BodyWriter,
    /// Where the body's first byte goes in the file.
    offset: u64,
    total: Option<u64>,
    body: client::Body,
}

/// One try up to its body: finds what an earlier try left, sends the request, decides from
/// the response where the bytes go and records that. `None` when the try ended without a
/// body to stream (the file was found placed, or the part already held all of it).
async fn begin(ctx: &TaskCtx, file: &mut FileEntry) -> Result<Option<Transfer>, FileError> {
    let lease = ctx.lease;
    let stop = &ctx.stop.token;
    let dest_dir = PathBuf::from(&ctx.dest_dir);
    let url = url::Url::parse(&file.url)
        .map_err(|e| FileError::Fatal(format!("invalid URL {}: {e}", redact_url(&file.url))))?;
    // The host of the URL for messages (never credentials or query).
    let host = url
        .host_str()
        .map_or_else(|| redact_url(&file.url), str::to_owned);

    // A previous attempt may have renamed the file just before it could record that.
    let mut existing = None;
    if let Some(dest) = file.dest_path.clone() {
        let dest = PathBuf::from(dest);
        let part_path = part::part_path(&dest);
        if !part_path.exists()
            && let Some((len, sha256)) = already_placed(file, &dest).await
        {
            return record_done(ctx, file, &dest, len, sha256)
                .await
                .map(|()| None);
        }
        let opened = part::open_locked(&part_path, stop)
            .await
            .map_err(|e| io_fatal("open", &part_path, &e))?;
        let Some(mut part) = opened else {
            return Err(FileError::Stopped);
        };
        let on_disk = part.len().map_err(|e| io_fatal("read", &part_path, &e))?;
        let offset = file.bytes_done.min(on_disk);
        part.truncate_to(offset)
            .map_err(|e| io_fatal("truncate", &part_path, &e))?;
        file.bytes_done = offset;
        existing = Some((dest, part));
    }

    let validator = file
        .etag
        .clone()
        .filter(|e| is_strong_etag(e))
        .or_else(|| file.last_modified.clone());
    let had_partial = existing.is_some() && file.bytes_done > 0;
    let resume_from = match (&existing, &validator) {
        (Some(_), Some(_)) if file.bytes_done > 0 => file.bytes_done,
        _ => 0,
    };

    let range = match &validator {
        Some(v) if resume_from > 0 => Some((resume_from, v.clone())),
        _ => None,
    };
    let mut response = send(ctx, url, range.as_ref()).await?;
    fault::panic_point("head");
    let status = response.status();
    // Taken out, and dropped before the body streams: header values are views into the
    // connection's first read buffer, which they would otherwise keep alive to the end.
    let headers = std::mem::take(response.headers_mut());
    check_status(status, &headers, &host)?;

    if status == StatusCode::RANGE_NOT_SATISFIABLE {
        let total = header_str(&headers, header::CONTENT_RANGE).and_then(parse_unsatisfied_range);
        if let (Some(total), Some((dest, part))) = (total, existing)
            && total == resume_from
            && resume_from > 0
        {
            file.bytes_total = Some(total);
            let writer = body_writer(ctx, file, part, total);
            return verify_and_finalize(ctx, file, writer, &dest, total)
                .await
                .map(|()| None);
        }
        return Err(restart_needed(ctx, file, "server refused the resume range (416)").await);
    }

    let content_range = header_str(&headers, header::CONTENT_RANGE).and_then(parse_content_range);
    let start = if status == StatusCode::PARTIAL_CONTENT {
        match content_range {
            Some(r) if r.start == resume_from && resume_from > 0 => {
                if r.total.is_some() && file.bytes_total.is_some() && r.total != file.bytes_total {
                    Start::FromZero("the remote file's size changed".into())
                } else {
                    Start::Append(resume_from)
                }
            }
            Some(r) if r.start == 0 => Start::FromZero("server sent the whole file as 206".into()),
            Some(r) => {
                let reason = format!(
                    "server answered a resume at {resume_from} with a range starting at {}",
                    r.start
                );
                return Err(restart_needed(ctx, file, &reason).await);
            }
            None => {
                return Err(restart_needed(ctx, file, "206 without a usable Content-Range").await);
            }
        }
    } else if resume_from > 0 {
        Start::FromZero("server sent 200 to a resume (range ignored or file changed)".into())
    } else if had_partial {
        Start::FromZero("no strong validator (ETag or Last-Modified) to resume safely".into())
    } else {
        Start::FromZero(String::new())
    };

    let body_len = response.content_length();
    let total = match (&start, content_range) {
        (Start::Append(_), Some(r)) => r.total.or(body_len.map(|b| b + resume_from)),
        (_, Some(r)) if status == StatusCode::PARTIAL_CONTENT => r.total,
        _ => body_len,
    };
    if let Some(total) = total
        && total > ctx.max_file_size
    {
        return Err(FileError::Fatal(format!(
            "{host} announced {total} bytes, more than max_file_size_bytes ({})",
            ctx.max_file_size
        )));
    }
    let etag = header_str(&headers, header::ETAG).map(escape_controls);
    let last_modified = header_str(&headers, header::LAST_MODIFIED).map(escape_controls);
    let offset = match &start {
        Start::Append(offset) => *offset,
        Start::FromZero(_) => 0,
    };
    // Refuse before a byte is written (or a file created) when it cannot fit.
    let needed = total.map(|total| total.saturating_sub(offset));
    let space = ctx.space.take(&dest_dir, needed);
    if let (Some(needed), Some(free)) = (needed, space.free)
        && free < needed
    {
        return Err(FileError::Fatal(format!(
            "disk full: {needed} bytes needed in {}, not that much free",
            dest_dir.display()
        )));
    }
    let volume = space.volume;
    let target = Target {
        total,
        etag: etag.clone(),
        last_modified: last_modified.clone(),
    };

    // Where the bytes go.
    let (dest, part) = match (start, existing) {
        (Start::Append(_), Some((dest, part))) => {
            record_target(ctx, file, &dest, &target).await?;
            (dest, part)
        }
        (Start::FromZero(reason), Some((dest, mut part))) => {
            part.truncate_to(0)
                .map_err(|e| io_fatal("truncate", &part.path, &e))?;
            if !reason.is_empty() {
                record_restart(ctx, file, &reason).await?;
            }
            record_target(ctx, file, &dest, &target).await?;
            (dest, part)
        }
        (_, None) => {
            let suggested = header_str(&headers, header::CONTENT_DISPOSITION)
                .and_then(content_disposition_filename)
                .map(|n| sanitize_file_name(&n))
                .unwrap_or_else(|| file.name.clone());
            create_part(ctx, file, &dest_dir, &suggested, &target).await?
        }
    };
    file.dest_path = Some(dest.to_string_lossy().into_owned());
    file.bytes_total = total;
    file.etag = etag;
    file.last_modified = last_modified;
    file.bytes_done = offset;

    let _ = ctx.events.send(EngineEvent::FileStarted {
        task: lease.task,
        index: file.index,
        offset,
        total,
        at: Instant::now(),
    });
    Ok(Some(Transfer {
        host,
        writer: body_writer(ctx, file, part, offset).in_memory(volume.in_memory),
        dest,
        offset,
        total,
        body: response.into_body(),
    }))
}

/// Sends the GET (with `Range` + `If-Range` when resuming) and follows redirects to other
/// hosts itself: the client follows only same-origin ones (see `client::build`), so the
/// project's headers and any credentials go to the URL's own origin only, never to the host a
/// redirect points at. Every hop is checked (http/https only, never https to http) and the
/// host changes are bounded.
async fn send(
    ctx: &TaskCtx,
    mut url: url::Url,
    range: Option<&(u64, String)>,
) -> Result<client::Response, FileError> {
    let stop = &ctx.stop.token;
    let mut extra = ctx.headers.clone();
    let mut host_changes = 0;
    loop {
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut headers = extra.clone();
        if let Some((offset, validator)) = range {
            let value = |v: String| {
                header::HeaderValue::try_from(v)
                    .map_err(|e| FileError::Fatal(format!("bad request to {host}: {e}")))
            };
            headers.insert(header::RANGE, value(format!("bytes={offset}-"))?);
            headers.insert(header::IF_RANGE, value(validator.clone())?);
        }
        let response = tokio::select! {
            _ = stop.cancelled() => return Err(FileError::Stopped),
            r = tokio::time::timeout(ctx.stall_timeout, ctx.client.get(url.clone(), headers)) => match r {
                Err(_) => return Err(FileError::retry(format!(
                    "no response from {host} within {} s",
                    ctx.stall_timeout.as_secs()
                ))),
                Ok(Err(e)) => return Err(classify(&e, &host)),
                Ok(Ok(r)) => r,
            }
        };
        if !response.status().is_redirection() {
            return Ok(response);
        }
        let refused =
            |reason: String| FileError::Fatal(format!("redirect refused from {host}: {reason}"));
        let Some(mut next) = header_str(response.headers(), header::LOCATION)
            .and_then(|loc| response.url().join(loc).ok())
        else {
            return Err(refused(format!(
                "HTTP {} without a usable Location",
                response.status().as_u16()
            )));
        };
        if let Some(reason) = client::refuse_redirect(response.url(), &next) {
            return Err(refused(reason));
        }
        host_changes += 1;
        if host_changes > client::MAX_HOST_CHANGES {
            return Err(refused(format!(
                "too many redirects (more than {} changes of host)",
                client::MAX_HOST_CHANGES
            )));
        }
        tracing::debug!("redirected from {host} to {}", redact_url(next.as_str()));
        // What was meant for the first origin stays there, and credentials in a Location are
        // the server's: never sent on.
        extra = HeaderMap::new();
        let _ = next.set_username("");
        let _ = next.set_password(None);
        url = next;
    }
}

/// What the server said about the file this try.
struct Target {
    total: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// Records (fenced) where the file goes and its validators; `Stopped` if the claim is gone.
async fn record_target(
    ctx: &TaskCtx,
    file: &FileEntry,
    dest: &Path,
    target: &Target,
) -> Result<(), FileError> {
    let (lease, index) = (ctx.lease, file.index);
    let dest = dest.to_string_lossy().into_owned();
    let (total, etag, lm) = (
        target.total,
        target.etag.clone(),
        target.last_modified.clone(),
    );
    let held = ctx
        .write_placed(move |s, placed| {
            s.set_file_target(
                lease,
                index,
                &dest,
                total,
                etag.as_deref(),
                lm.as_deref(),
                placed,
                chrono::Utc::now(),
            )
        })
        .await
        .map_err(|e| FileError::retry(e.to_string()))?;
    if held {
        Ok(())
    } else {
        Err(FileError::Stopped)
    }
}

/// Picks a free name for a new file and creates its `.part`. The name is recorded before the
/// file is created, so a crash in between leaves a `.part` the next attempt finds and reuses,
/// never an orphan beside a `name (1)`. The name check and the create are a few metadata
/// calls on the local file system, made here rather than on a blocking thread: the hop would
/// cost more than the calls.
async fn create_part(
    ctx: &TaskCtx,
    file: &FileEntry,
    dir: &Path,
    name: &str,
    target: &Target,
) -> Result<(PathBuf, PartFile), FileError> {
    let mut from = 0;
    loop {
        let (n, dest) = part::free_name(dir, name, from).ok_or_else(|| {
            FileError::Fatal(format!("no free name for {name} in {}", dir.display()))
        })?;
        record_target(ctx, file, &dest, target).await?;
        match part::create_new(&dest) {
            Ok(part) => return Ok((dest, part)),
            // Another writer took the name between the check and the create.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => from = n + 1,
            Err(e) => return Err(io_fatal("create a file in", dir, &e)),
        }
    }
}

/// A writer appending to `part` from `offset` (already durable), reporting for `file`.
fn body_writer(ctx: &TaskCtx, file: &FileEntry, part: PartFile, offset: u64) -> BodyWriter {
    let report = WriterReport {
        task: ctx.lease.task,
        index: file.index,
        events: ctx.events.clone(),
        checkpoint_every: ctx.checkpoint_interval,
    };
    BodyWriter::new(part, offset, ctx.stop.token.clone(), report)
}

/// Streams the body into the transfer's writer: it gathers the chunks that are ready and
/// hands them to the disk as soon as no more are, and reads nothing while that batch is being
/// written. So no thread is held while the network is idle, and a slow disk slows the reading
/// instead of filling memory. Returns the bytes received when the whole body arrived (its last
/// batch not yet written: `verify_and_finalize` writes it and syncs once).
async fn stream_body(ctx: &TaskCtx, file: &FileEntry, transfer: &mut Transfer) -> Result<u64, Cut> {
    let Transfer {
        host,
        writer,
        offset,
        total,
        body,
        ..
    } = transfer;
    let (host, total) = (host.as_str(), *total);
    let stop = &ctx.stop.token;
    let mut received = *offset;
    let mut last_progress = Instant::now();
    let failure = loop {
        let rest = total.map(|t| t.saturating_sub(received));
        tokio::select! {
            biased;
            _ = stop.cancelled() => break Some(FileError::Stopped),
            landed = writer.landed(), if writer.is_writing() => {
                if let Err(e) = landed {
                    return Err(Cut::Disk(write_failure(writer.path(), e, writer.durable())));
                }
            }
            next = tokio::time::timeout(ctx.stall_timeout, body.chunk()), if writer.has_room(rest) => {
                match next {
                    Err(_) => {
                        break Some(FileError::retry(format!(
                            "stalled: no data from {host} for {} s",
                            ctx.stall_timeout.as_secs()
                        )));
                    }
                    Ok(Err(e)) => break Some(classify(&e, host)),
                    Ok(Ok(None)) => break None,
                    Ok(Ok(Some(chunk))) => {
                        received += chunk.len() as u64;
                        if total.is_some_and(|t| received > t) {
                            break Some(FileError::retry(format!(
                                "{host} sent more bytes than it announced ({total:?})"
                            )));
                        }
                        writer.gather(chunk);
                        if last_progress.elapsed() >= PROGRESS_EVERY {
                            last_progress = Instant::now();
                            let _ = ctx.events.send(EngineEvent::Progress {
                                task: ctx.lease.task,
                                index: file.index,
                                offset: received,
                                at: last_progress,
                            });
                        }
                    }
                }
            }
            // Nothing else is ready: the disk gets what was gathered.
            () = std::future::ready(()), if writer.can_start(rest) => writer.start(),
        }
    };
    let _ = ctx.events.send(EngineEvent::Progress {
        task: ctx.lease.task,
        index: file.index,
        offset: received,
        at: Instant::now(),
    });
    let failure = match (failure, total) {
        (None, Some(total)) if received != total => Some(FileError::retry(format!(
            "connection to {host} closed after {received} of {total} bytes"
        ))),
        (failure, _) => failure,
    };
    match failure {
        None => Ok(received),
        Some(failure) => Err(Cut::Body(failure)),
    }
}

/// After a body that broke off: writes and syncs everything received, so a retry resumes
/// after it, and returns the error to report.
async fn keep_what_arrived(
    file: &mut FileEntry,
    writer: BodyWriter,
    failure: FileError,
) -> FileError {
    let path = writer.path().to_owned();
    let (durable, written) = writer.finish().await;
    file.bytes_done = file.bytes_done.max(durable);
    match written {
        Ok(()) => failure,
        Err(e) => write_failure(&path, e, durable),
    }
}

/// Verifies the complete body (its last batch still in `writer`) against the expected
/// sha256 and renames it into place. The last write, the hash, the sync and the rename run in
/// one blocking call, and the sync before the rename is the only one: a checkpoint of a file
/// about to be placed would be redundant. Until the rename, the durable offset stays the last
/// checkpoint, so a crash or a failed rename resumes from there; after it, `already_placed`
/// finds the file by its recorded size.
async fn verify_and_finalize(
    ctx: &TaskCtx,
    file: &mut FileEntry,
    writer: BodyWriter,
    dest: &Path,
    bytes: u64,
) -> Result<(), FileError> {
    if file.bytes_total != Some(bytes) {
        // The server gave no length: record it now, so that a crash between the rename and
        // the commit still finds the placed file complete (see `already_placed`).
        let target = Target {
            total: Some(bytes),
            etag: file.etag.clone(),
            last_modified: file.last_modified.clone(),
        };
        record_target(ctx, file, dest, &target).await?;
        file.bytes_total = Some(bytes);
    }
    let expected = file.sha256_expected.clone();
    let dest_owned = dest.to_owned();
    let part_path = writer.path().to_owned();
    let in_memory = writer.is_in_memory();
    let (durable, outcome) = writer
        .finish_with(
            expected.is_some(),
            move |part| -> std::io::Result<(Option<String>, Option<PathBuf>)> {
                let actual = match &expected {
                    Some(_) => Some(part::sha256_hex(part)?),
                    None => None,
                };
                if let (Some(want), Some(got)) = (&expected, &actual)
                    && !want.eq_ignore_ascii_case(got)
                {
                    part.truncate_to(0)?;
                    return Ok((actual, None));
                }
                let placed = part::finalize(part, &dest_owned, in_memory)?;
                Ok((actual, Some(placed)))
            },
        )
        .await;
    file.bytes_done = file.bytes_done.max(durable);
    // The file stays locked until its end is recorded.
    let (_part, outcome) = outcome.map_err(|e| write_failure(&part_path, e, durable))?;
    match outcome.map_err(|e| io_fatal("finish", dest, &e))? {
        (actual, Some(placed)) => record_done(ctx, file, &placed, bytes, actual).await,
        (actual, None) => {
            let want = file.sha256_expected.clone().unwrap_or_default();
            let got = actual.unwrap_or_default();
            let reason = format!("checksum mismatch: expected sha256 {want}, got {got}");
            let _ = record_restart(ctx, file, &reason).await;
            Err(FileError::Fatal(reason))
        }
    }
}

/// The file a previous attempt renamed into place just before it died (so it could not record
/// it): its `.part` is gone, and the file at the destination has the recorded size and, when
/// one is expected, the right sha256. `None` when that is not the case.
async fn already_placed(file: &FileEntry, dest: &Path) -> Option<(u64, Option<String>)> {
    let total = file.bytes_total?;
    let expected = file.sha256_expected.clone();
    let dest = dest.to_owned();
    tokio::task::spawn_blocking(move || {
        let len = std::fs::metadata(&dest).ok()?.len();
        if len != total {
            return None;
        }
        let Some(want) = expected else {
            return Some((len, None));
        };
        let mut placed = PartFile {
            file: std::fs::File::open(&dest).ok()?,
            path: dest,
        };
        let got = part::sha256_hex(&mut placed).ok()?;
        want.eq_ignore_ascii_case(&got).then_some((len, Some(got)))
    })
    .await
    .ok()
    .flatten()
}

async fn record_done(
    ctx: &TaskCtx,
    file: &mut FileEntry,
    placed: &Path,
    bytes: u64,
    sha256: Option<String>,
) -> Result<(), FileError> {
    let dest = placed.to_string_lossy().into_owned();
    file.dest_path = Some(dest.clone());
    file.bytes_done = bytes;
    file.done = true;
    file.sha256 = sha256.clone();
    let _ = ctx.events.send(EngineEvent::FileDone {
        task: ctx.lease.task,
        index: file.index,
        bytes,
    });
    let placed = PlacedFile {
        index: file.index,
        bytes,
        sha256,
        dest,
    };
    if ctx.unrecorded.defer(placed) {
        return Ok(());
    }
    let held = ctx
        .record_placed()
        .await
        .map_err(|e| FileError::retry(e.to_string()))?;
    if held {
        Ok(())
    } else {
        Err(FileError::Stopped)
    }
}

/// Resets the file's durable offset and logs why; the next try starts from zero.
async fn record_restart(
    ctx: &TaskCtx,
    file: &mut FileEntry,
    reason: &str,
) -> Result<(), FileError> {
    file.bytes_done = 0;
    let (lease, index, by, reason) = (ctx.lease, file.index, ctx.actor.clone(), reason.to_owned());
    tracing::info!(task = %lease.task, file = index, "{reason}; restarting from 0");
    let held = ctx
        .write(move |s| s.restart_file(lease, index, &reason, &by, chrono::Utc::now()))
        .await
        .map_err(|e| FileError::retry(e.to_string()))?;
    if held {
        Ok(())
    } else {
        Err(FileError::Stopped)
    }
}

async fn restart_needed(ctx: &TaskCtx, file: &mut FileEntry, reason: &str) -> FileError {
    match record_restart(ctx, file, reason).await {
        Ok(()) => FileError::Retry {
            message: format!("{reason}; restarting from 0"),
            retry_after: Some(Duration::ZERO),
        },
        Err(e) => e,
    }
}

fn check_status(status: StatusCode, headers: &HeaderMap, host: &str) -> Result<(), FileError> {
    if status.is_success() || status == StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(());
    }
    let reason = status.canonical_reason().unwrap_or("");
    let message = format!("HTTP {} {reason} from {host}", status.as_u16());
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    if retryable {
        let retry_after = header_str(headers, header::RETRY_AFTER)
            .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
        Err(FileError::Retry {
            message,
            retry_after,
        })
    } else {
        Err(FileError::Fatal(message))
    }
}

fn classify(err: &client::Error, host: &str) -> FileError {
    let detail = escape_controls(&error_chain(err));
    if err.is_redirect() {
        return FileError::Fatal(format!("redirect refused from {host}: {detail}"));
    }
    if err.is_builder() {
        return FileError::Fatal(format!("bad request to {host}: {detail}"));
    }
    if err.is_proxy() {
        return FileError::Fatal(format!("cannot reach {host}: {detail}"));
    }
    if detail.contains("certificate") || detail.contains("Certificate") {
        return FileError::Fatal(format!("TLS certificate not trusted for {host}: {detail}"));
    }
    FileError::retry(format!("connection to {host} failed: {detail}"))
}

/// The error and its sources, without the URL (which may hold secrets).
fn error_chain(err: &client::Error) -> String {
    let mut parts = client::messages(err);
    if parts.len() > 1 {
        // The sources say what went wrong; the error itself names only its kind.
        parts.remove(0);
    }
    parts.dedup();
    parts.join(": ")
}

fn write_failure(path: &Path, err: WriteError, kept: u64) -> FileError {
    match err {
        WriteError::Stopped => FileError::Stopped,
        WriteError::Io(e) => write_error(path, &e, kept),
    }
}

fn write_error(path: &Path, err: &std::io::Error, kept: u64) -> FileError {
    let disk_full = matches!(err.raw_os_error(), Some(code) if code == rustix::io::Errno::NOSPC.raw_os_error() || code == rustix::io::Errno::FBIG.raw_os_error());
    if disk_full {
        FileError::Fatal(format!(
            "disk full writing {}: {kept} bytes kept; resume when space is freed",
            path.display()
        ))
    } else {
        io_fatal("write", path, err)
    }
}

fn io_fatal(action: &str, path: &Path, err: &std::io::Error) -> FileError {
    FileError::Fatal(format!("cannot {action} {}: {err}", path.display()))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}
