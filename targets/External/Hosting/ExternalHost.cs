using EptFuzz.Contract;
using EptFuzz.Targets.External.Protocol;

namespace EptFuzz.Targets.External.Hosting;

/// <summary>
/// One target process and its arena, for one worker thread, across cases: started on first use,
/// restarted after a fault. It turns the case's operations into commands and the target's arena
/// changes into the writes every other translator replays (by comparing the pages the target
/// holds with what the translators were last told: the harness sees every write, the adapter
/// copies nothing).
/// </summary>
internal sealed class ExternalHost : IDisposable
{
    private readonly ExternalTargetOptions options;
    private readonly FrameWriter writer = new();
    private TargetProcess? process;
    private Arena? arena;

    // The case in progress.
    private ulong arenaHpa;
    private uint usablePages;
    private int maxPhyAddr = 46;
    private readonly HashSet<uint> held = [];
    /// <summary>Pages with an ALLOC or FREE since the last answer: compared even if no longer held.</summary>
    private readonly HashSet<uint> touched = [];
    /// <summary>What the translators hold for each arena page that ever differed from zero in this case.</summary>
    private readonly Dictionary<uint, ulong[]> told = [];
    /// <summary>Arena pages the harness wrote that the target does not hold: zeroed before the next case.</summary>
    private readonly HashSet<uint> harnessWritten = [];
    /// <summary>Host memory outside the arena, as the harness wrote it (pokes, A/D bits of pages outside).</summary>
    private readonly Dictionary<ulong, ulong[]> outside = [];
    private bool disposed;

    /// <summary>WALK commands written but not yet sent: they travel with the next command (one round trip for both).</summary>
    private readonly FrameWriter walkWriter = new();
    private byte[] pendingWalkBytes = new byte[1024];
    private int pendingWalkLength;
    private readonly List<(int Step, bool Linear, ulong Address)> pendingWalks = [];
    private readonly Dictionary<int, WalkAnswer> walkAnswers = [];

    /// <summary>At most this many lookups wait for the next command: their answers must fit the target's output pipe while we still write.</summary>
    private const int MaxPendingWalks = 512;

    // Look-ahead (PROTOCOL.md "Journal mode"): commands sent whose answers are not read yet, in order.
    private enum Pending : byte
    {
        Operation,
        Walk,
        JournalOff,
    }

    /// <param name="Start">For an operation: where its frame lies in <see cref="segment"/> (its call must send the same bytes).</param>
    private readonly record struct Sent(Pending Kind, int Step, int Start, int Length);

    private readonly Queue<Sent> sent = new();
    private int sentOperations;
    /// <summary>The target reports its writes (WRITE events) instead of the harness comparing pages.</summary>
    private bool journal;
    private IReadOnlyList<PlannedStep>? plan;
    private int planCursor;
    /// <summary>Journal mode is on and the plan has steps not sent yet.</summary>
    private bool planOpen;
    private readonly PlanEncoder encoder = new();
    private readonly FrameWriter journalWriter = new();
    private byte[] segment = new byte[4096];
    private int segmentLength;
    /// <summary>Probes whose WALK went with the plan: their sessions ask nothing more.</summary>
    private readonly HashSet<int> plannedWalks = [];
    /// <summary>A segment of look-ahead stays well inside a pipe's 64 KiB, so the write never waits for the target to read.</summary>
    private const int SegmentBytes = 16 * 1024;
    /// <summary>Runs of more writes than this to one page become one page effect.</summary>
    private const int PageEffectThreshold = 16;
    private readonly List<(uint Page, int Word, ulong Value)> journalRun = [];

    public ExternalHost(ExternalTargetOptions options)
    {
        this.options = options;
    }

    public TargetDeclaration? Declaration { get; private set; }

    public string Name => Declaration?.Name ?? $"exec:{options.Path}";

    /// <summary>The root of the target's tables (EPTP[51:12]) as its last SET_EPTP answered.</summary>
    public ulong Eptp { get; private set; }

    public int WalkLength { get; private set; } = 4;

    /// <summary>Starts the process and says HELLO if it is not running (first use, or after a fault).</summary>
    public TargetDeclaration EnsureRunning()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (process is not null && Declaration is not null)
        {
            return Declaration;
        }

        arena ??= new Arena(options.ArenaPages);
        process = TargetProcess.Start(options.Path, options.Timeout);
        try
        {
            writer.Begin(Command.Hello).U32(ProtocolVersion.Current).U32((uint)arena.Pages).Text(arena.FilePath);
            process.Send(writer.Finish());
            var body = process.Receive();
            var reader = new FrameReader(body);
            var code = (Answer)reader.U8();
            if (code == Answer.Error)
            {
                throw new TargetFailureException(process.Label, $"refused to start: {reader.Text()}");
            }

            if (code != Answer.Hello)
            {
                throw new TargetFailureException(process.Label, $"answered HELLO with answer code 0x{(byte)code:x2}, not a HELLO reply (0x81): is it built with an eptfuzz SDK?");
            }

            uint version = reader.U32();
            var operations = (TargetOperations)reader.U32();
            var sizes = (TargetPageSizes)reader.U8();
            var walkers = (TargetWalkers)reader.U8();
            string name = reader.Text();
            reader.End("HELLO reply");
            if (version != ProtocolVersion.Current)
            {
                throw new TargetFailureException(process.Label, $"speaks target protocol version {version}; this eptfuzz speaks version {ProtocolVersion.Current} (rebuild the adapter with the SDK from 'eptfuzz sdk')");
            }

            if (!TargetDeclaration.IsValidName(name))
            {
                throw new TargetFailureException(process.Label, $"declared the name '{name}': a target name is 1-40 letters, digits, '-' or '_', and not one of {string.Join(", ", TargetDeclaration.ReservedNames)}");
            }

            arena.Unlink();
            Declaration = new TargetDeclaration(name, version, operations, sizes, walkers);
            process.Label = name;
            return Declaration;
        }
        catch (TargetFaultException e)
        {
            // Dying before HELLO is answered is not a finding about any case: the target cannot run.
            Stop();
            throw new TargetFailureException($"exec:{options.Path}", $"did not answer HELLO: {e.Message}\n{e.Log}", e);
        }
        catch (ProtocolViolation e)
        {
            Stop();
            throw new TargetFailureException($"exec:{options.Path}", $"answered HELLO wrongly: {e.Message}", e);
        }
        catch
        {
            Stop();
            throw;
        }
    }

    /// <summary>
    /// The case about to start, as a list of its steps (<see cref="ILookAheadHypervisor"/>): when the
    /// target keeps a journal, <see cref="Reset"/> sends its operations ahead. Used by the next
    /// <see cref="Reset"/> only.
    /// </summary>
    public void Plan(IReadOnlyList<PlannedStep> steps) => plan = steps;

    /// <summary>Lookup sessions open on this host: only then are the probes' WALKs sent ahead.</summary>
    public int WalkSessions { get; set; }

    /// <summary>
    /// Starts a case: the target forgets everything, then loads the default EPTP; the arena pages the
    /// harness wrote are zeroed. The EPTP's result and value count only when RESET answered ok.
    /// With a plan and a target that keeps a journal, the case's operations up to the first step
    /// the harness must do itself go in the same write.
    /// </summary>
    public (ApiResult Reset, ApiResult SetEptp, ulong Eptp) Reset(CpuCapabilities cpu, EptpRequest defaultEptp, List<HypervisorEffect> effects)
    {
        var steps = plan;
        plan = null;
        Abandon();
        EnsureRunning();
        foreach (uint page in harnessWritten)
        {
            arena!.Clear(page);
        }

        harnessWritten.Clear();
        pendingWalks.Clear();
        pendingWalkLength = 0;
        walkAnswers.Clear();
        plannedWalks.Clear();
        droppedWalks.Clear();
        held.Clear();
        touched.Clear();
        told.Clear();
        outside.Clear();
        journal = false;
        planOpen = false;
        Eptp = 0;
        WalkLength = 4;
        maxPhyAddr = cpu.MaxPhyAddr;
        // As the in-tree pool: at most the upper half of the physical address space.
        ulong maxPages = cpu.MaxPhyAddr >= 13 ? 1UL << (cpu.MaxPhyAddr - 13) : 1;
        usablePages = (uint)Math.Min((ulong)arena!.Pages, maxPages);
        arenaHpa = (1UL << cpu.MaxPhyAddr) - ((ulong)usablePages << 12);
        ushort flags = (ushort)(
            (cpu.ExecuteOnly ? 1 << 0 : 0) | (cpu.Page2M ? 1 << 1 : 0) | (cpu.Page1G ? 1 << 2 : 0)
            | (cpu.AccessedDirty ? 1 << 3 : 0) | (cpu.Mbec ? 1 << 4 : 0) | (cpu.Walk5 ? 1 << 5 : 0)
            | (cpu.AdvancedExitInfo ? 1 << 6 : 0) | (cpu.EptpUc ? 1 << 7 : 0) | (cpu.EptpWb ? 1 << 8 : 0));
        bool lookAhead = steps is not null && options.LookAhead && Declaration!.Operations.HasFlag(TargetOperations.Journal);
        segmentLength = 0;
        writer.Begin(Command.Reset).U64(arenaHpa).U32(usablePages).U8((byte)cpu.MaxPhyAddr).U16(flags);
        AppendToSegment(writer.Finish());
        if (lookAhead)
        {
            Commands.Journal(writer, true);
            AppendToSegment(writer.Finish());
        }

        // The case format's default EPTP travels with RESET: one round trip for both.
        Commands.SetEptp(writer, defaultEptp);
        AppendToSegment(writer.Finish());
        if (lookAhead)
        {
            activePlan = steps;
            planCursor = 0;
            planOpen = true;
            encoder.Reset();
            FillSegment([]);
        }

        var p = process!;
        try
        {
            // From RESET on the target may be ahead of what the harness reads: nothing is compared.
            journal = lookAhead;
            p.Send(segment.AsSpan(0, segmentLength));
            var result = ReadOperationReply(p, null, out _);
            if (lookAhead && ReadOperationReply(p, effects, out _) is var on && on != ApiResult.Ok)
            {
                throw new ProtocolViolation("journal-result", $"answered JOURNAL on with {on}; it must answer ok");
            }

            var eptpResult = ReadOperationReply(p, effects, out ulong eptp);
            if (result == ApiResult.Ok)
            {
                SetEptpAnswer(eptp, eptpResult == ApiResult.Ok ? defaultEptp.WalkLength : WalkLength);
            }

            return (result, eptpResult, eptp);
        }
        catch (ProtocolViolation e)
        {
            throw ProtocolFault(p, e);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
    }

    private IReadOnlyList<PlannedStep>? activePlan;

    private void AppendToSegment(ReadOnlySpan<byte> frame)
    {
        if (segmentLength + frame.Length > segment.Length)
        {
            Array.Resize(ref segment, Math.Max(segment.Length * 2, segmentLength + frame.Length));
        }

        frame.CopyTo(segment.AsSpan(segmentLength));
        segmentLength += frame.Length;
    }

    /// <summary>
    /// Appends the plan's next commands to the segment: its operations and the WALKs of its probes
    /// (when a lookup session is open), up to a step the harness does itself (the target must be
    /// idle then: the segment ends before it), a probe that may make the harness write memory
    /// (accessed/dirty flags, guest paging: the segment ends after it), or the segment's size; at
    /// the plan's end, JOURNAL off. <paramref name="call"/>, when not empty, is the frame of the
    /// call that asks for this segment: the steps before it in the plan are behind the runner
    /// (done by the harness, or asked by the lookup already) and are passed over.
    /// </summary>
    private void FillSegment(ReadOnlySpan<byte> call)
    {
        var steps = activePlan!;
        bool catchingUp = !call.IsEmpty;
        bool any = false;
        while (planCursor < steps.Count)
        {
            var step = steps[planCursor];
            if (step.Call is { } operation)
            {
                encoder.Encode(operation);
                if (encoder.HarnessStep)
                {
                    if (!catchingUp)
                    {
                        // Encoded again when the segment after it is filled (its flags are sticky);
                        // with no operation after it, journal mode ends here.
                        if (!OperationsAfter(planCursor))
                        {
                            CloseJournal();
                        }

                        return;
                    }

                    planCursor++;
                    continue;
                }

                if (any && segmentLength >= SegmentBytes)
                {
                    return;
                }

                if (catchingUp)
                {
                    if (!encoder.Frame.SequenceEqual(call))
                    {
                        throw new InvalidOperationException($"the call that continues the case is not the plan's next operation (step {step.Index + 1})");
                    }

                    catchingUp = false;
                }

                int start = segmentLength;
                AppendToSegment(encoder.Frame);
                sent.Enqueue(new Sent(Pending.Operation, step.Index, start, segmentLength - start));
                sentOperations++;
                any = true;
            }
            else if (step.Probe is { Kind: ProbeKind.Access } probe && !catchingUp)
            {
                if (WalkSessions > 0 && Declaration!.Answers(probe.Access.Linear))
                {
                    Commands.Walk(journalWriter, probe.Access.Linear, probe.Access.Address);
                    AppendToSegment(journalWriter.Finish());
                    sent.Enqueue(new Sent(Pending.Walk, step.Index, 0, 0));
                    plannedWalks.Add(step.Index);
                }

                if (encoder.AccessedDirty || (encoder.GuestPagingOn && probe.Access.Linear))
                {
                    // The translators may set accessed/dirty flags at this probe, which the harness
                    // then writes into memory: nothing after it may run before.
                    planCursor++;
                    return;
                }
            }

            planCursor++;
        }

        if (catchingUp)
        {
            throw new InvalidOperationException("the call that continues the case is past the plan's end");
        }

        CloseJournal();
    }

    private bool OperationsAfter(int index)
    {
        var steps = activePlan!;
        for (int i = index + 1; i < steps.Count; i++)
        {
            if (steps[i].Call is { } operation)
            {
                encoder.Encode(operation);
                if (!encoder.HarnessStep)
                {
                    return true;
                }
            }
        }

        return false;
    }

    private void CloseJournal()
    {
        Commands.Journal(journalWriter, false);
        AppendToSegment(journalWriter.Finish());
        sent.Enqueue(new Sent(Pending.JournalOff, -1, 0, 0));
        planOpen = false;
        activePlan = null;
    }

    /// <summary>The answer to the lookup at <paramref name="step"/> is not compared (see the lookup session).</summary>
    public void DropWalkAnswer(int step) => droppedWalks.Add(step);

    private readonly HashSet<int> droppedWalks = [];

    /// <summary>Whether the WALK for the probe at <paramref name="step"/> went ahead with the plan.</summary>
    public bool WalkSentAhead(int step) => plannedWalks.Contains(step);

    /// <summary>
    /// The answers of commands the last case sent ahead and never asked for (it ended early: a
    /// divergence, a refusal) are read and dropped. They belong to steps that case never reached,
    /// so a fault among them is no finding of it: the process is restarted instead.
    /// </summary>
    private void Abandon()
    {
        if (sent.Count == 0)
        {
            return;
        }

        var p = process;
        int count = sent.Count;
        sent.Clear();
        sentOperations = 0;
        planOpen = false;
        activePlan = null;
        if (p is null)
        {
            return;
        }

        try
        {
            for (int i = 0; i < count; i++)
            {
                var code = (Answer)p.Receive()[0];
                if (code is Answer.Fault or Answer.Error)
                {
                    Stop();
                    return;
                }

                if (code == Answer.Events)
                {
                    // More of the same operation's answer.
                    i--;
                }
            }
        }
        catch (TargetFaultException)
        {
            // Crashed or hung on a step the case never reached (see above): start afresh.
            Stop();
        }
        catch (ProtocolViolation)
        {
            Stop();
        }
    }

    /// <summary>
    /// Sends a command of the harness's own (<c>SET_GUEST</c>, <c>WRITE</c>) already written into
    /// <see cref="Writer"/>, between the case's operations: the target is idle (everything sent
    /// before is answered first).
    /// </summary>
    public ApiResult ExecuteHarness(List<HypervisorEffect>? effects)
    {
        var p = process ?? throw new InvalidOperationException("the target is not running");
        try
        {
            Quiesce(p);
        }
        catch (ProtocolViolation e)
        {
            throw ProtocolFault(p, e);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }

        return SendAndRead(p, effects, out _);
    }

    /// <summary>Everything sent is answered: the target is idle (a step the harness does itself may write memory now).</summary>
    private void Quiesce(TargetProcess p)
    {
        if (sentOperations > 0)
        {
            throw new InvalidOperationException("the harness's own step came while operations sent ahead were unanswered: the plan must end a segment before it");
        }

        ReadLeading(p);
    }

    /// <summary>
    /// Sends an operation command already written into <see cref="Writer"/>; appends what it changed.
    /// When the command went ahead with the plan, only its answer is read (the bytes must be the
    /// ones sent: a call out of step with the plan is a harness bug).
    /// </summary>
    public ApiResult Execute(List<HypervisorEffect>? effects, out ulong extra)
    {
        var p = process ?? throw new InvalidOperationException("the target is not running");
        try
        {
            if (sentOperations == 0 && planOpen)
            {
                // The plan continues past the last segment: send the next one (with any lookups queued since).
                segmentLength = 0;
                if (pendingWalks.Count > 0)
                {
                    AppendToSegment(pendingWalkBytes.AsSpan(0, pendingWalkLength));
                    foreach (var (step, _, _) in pendingWalks)
                    {
                        sent.Enqueue(new Sent(Pending.Walk, step, 0, 0));
                    }

                    pendingWalks.Clear();
                    pendingWalkLength = 0;
                }

                FillSegment(writer.Finish());
                p.Send(segment.AsSpan(0, segmentLength));
            }

            if (sentOperations > 0)
            {
                ReadLeading(p);
                var head = sent.Dequeue();
                sentOperations--;
                if (!segment.AsSpan(head.Start, head.Length).SequenceEqual(writer.Finish()))
                {
                    throw new InvalidOperationException($"the call for step {head.Step + 1} is not the command the plan sent ahead for it");
                }

                var result = ReadOperationReply(p, effects, out extra);
                if (sentOperations == 0 && !planOpen)
                {
                    // The last operation sent ahead: read what follows it (lookups, JOURNAL off) now,
                    // so that the journal is checked against the arena within this step.
                    ReadLeading(p);
                }

                return result;
            }

            ReadLeading(p);
        }
        catch (ProtocolViolation e)
        {
            throw ProtocolFault(p, e);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }

        return SendAndRead(p, effects, out extra);
    }

    /// <summary>One command and its answer (with the lookups queued before it).</summary>
    private ApiResult SendAndRead(TargetProcess p, List<HypervisorEffect>? effects, out ulong extra)
    {
        try
        {
            if (pendingWalks.Count > 0)
            {
                p.Send(pendingWalkBytes.AsSpan(0, pendingWalkLength));
                TargetFaultException? sendFailed = null;
                try
                {
                    p.Send(writer.Finish());
                }
                catch (TargetFaultException e)
                {
                    // The target died on one of the lookups before it read this command: the
                    // answers it wrote are still in the pipe, so reading them finds which one.
                    sendFailed = e;
                }

                ReadWalkAnswers(p);
                if (sendFailed is not null)
                {
                    throw sendFailed;
                }
            }
            else
            {
                p.Send(writer.Finish());
            }

            return ReadOperationReply(p, effects, out extra);
        }
        catch (ProtocolViolation e)
        {
            throw ProtocolFault(p, e);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
    }

    /// <summary>Reads the answers at the head of what was sent ahead up to the next operation: lookups, and JOURNAL off (then checks the journal).</summary>
    private void ReadLeading(TargetProcess p)
    {
        while (sent.Count > 0 && sent.Peek().Kind != Pending.Operation)
        {
            var entry = sent.Dequeue();
            if (entry.Kind == Pending.Walk)
            {
                ReadWalkAnswer(p, entry.Step);
                continue;
            }

            var result = ReadOperationReply(p, null, out _);
            if (result != ApiResult.Ok)
            {
                throw new ProtocolViolation("journal-result", $"answered JOURNAL off with {result}; it must answer ok");
            }

            journal = false;
            CheckJournal();
        }
    }

    /// <summary>
    /// The end of journal mode: the translators were told every write the target reported; the
    /// arena must hold exactly that (else a write went unreported), and no page given back may have changed.
    /// </summary>
    private void CheckJournal()
    {
        foreach (uint page in held)
        {
            var live = arena!.Page(page);
            bool known = told.TryGetValue(page, out var words);
            if (known ? !live.SequenceEqual(words) : live.ContainsAnyExcept(0UL))
            {
                int word = 0;
                while (word < Arena.WordsPerPage && live[word] == (known ? words![word] : 0))
                {
                    word++;
                }

                throw new ProtocolViolation("journal-missed-write", $"arena page {page} word {word} holds 0x{live[word]:x}, which no WRITE event reported (a write outside an operation, or an SDK that missed one)");
            }
        }

        CheckGivenBack();
    }

    /// <summary>Reads answers up to the REPLY of the command sent last-but-pending, handling NOTIFY on the way.</summary>
    private ApiResult ReadOperationReply(TargetProcess p, List<HypervisorEffect>? effects, out ulong extra)
    {
        while (true)
        {
            var body = p.Receive();
            var reader = new FrameReader(body);
            var code = (Answer)reader.U8();
            switch (code)
            {
                case Answer.Reply:
                    {
                        byte result = reader.U8();
                        if (result > (byte)ApiResult.ResourceLimit)
                        {
                            throw new ProtocolViolation("unknown-result", $"result code {result} (0 to 8 allowed)");
                        }

                        ReadEvents(ref reader, effects);
                        extra = reader.Remaining >= 8 ? reader.U64() : 0;
                        reader.End("operation reply");
                        Compare(effects);
                        return (ApiResult)result;
                    }

                case Answer.Events:
                    if (!journal)
                    {
                        throw new ProtocolViolation("events-outside-journal", "an EVENTS answer while journal mode is off");
                    }

                    ReadEvents(ref reader, effects);
                    reader.End("EVENTS");
                    continue;
                case Answer.Notify:
                    if (journal)
                    {
                        throw new ProtocolViolation("notify-in-journal", "NOTIFY in journal mode (an INVEPT inside an operation is a WRITE-then-INVEPT run of events there)");
                    }

                    ReadEvents(ref reader, effects);
                    reader.End("NOTIFY");
                    Compare(effects);
                    p.Send(writer.Begin(Command.Ack).Finish());
                    continue;
                case Answer.Fault:
                    {
                        byte kind = reader.U8();
                        string message = reader.Text();
                        p.Kill();
                        var (faultKind, detail) = kind switch
                        {
                            1 => (TargetFaultKind.Accounting, "double-free"),
                            2 => (TargetFaultKind.Accounting, "free-not-taken"),
                            3 => (TargetFaultKind.Crash, "fail"),
                            _ => throw new ProtocolViolation("unknown-fault", $"FAULT kind {kind} (1 to 3 allowed): {message}"),
                        };
                        throw new TargetFaultException(Name, faultKind, detail, $"reported: {message}", p.StderrTail);
                    }

                case Answer.Error:
                    {
                        string message = reader.Text();
                        p.Kill();
                        throw new TargetFaultException(Name, TargetFaultKind.Crash, "error", $"gave up: {message}", p.StderrTail);
                    }

                default:
                    throw new ProtocolViolation("unexpected-answer", $"answer code 0x{(byte)code:x2} where an operation reply (0x80) or NOTIFY (0x83) belongs");
            }
        }
    }

    /// <summary>
    /// Queues a question to the target's own lookup, answered for <paramref name="step"/>: it is sent
    /// with the next command, or by <see cref="FlushWalks"/>, and the target answers it on the state
    /// the case has at this point (commands run in order).
    /// </summary>
    public void QueueWalk(int step, bool linear, ulong address)
    {
        var frame = walkWriter.Begin(Command.Walk).U8(linear ? (byte)1 : (byte)0).U64(address).Finish();
        if (pendingWalkLength + frame.Length > pendingWalkBytes.Length)
        {
            Array.Resize(ref pendingWalkBytes, Math.Max(pendingWalkBytes.Length * 2, pendingWalkLength + frame.Length));
        }

        frame.CopyTo(pendingWalkBytes.AsSpan(pendingWalkLength));
        pendingWalkLength += frame.Length;
        pendingWalks.Add((step, linear, address));
        if (pendingWalks.Count >= MaxPendingWalks)
        {
            FlushWalks();
        }
    }

    /// <summary>Sends the queued lookups now and collects their answers.</summary>
    public void FlushWalks()
    {
        if (pendingWalks.Count == 0)
        {
            return;
        }

        if (sentOperations > 0)
        {
            throw new InvalidOperationException("lookups queued while operations sent ahead are unanswered: their answers would come after those");
        }

        var p = process ?? throw new InvalidOperationException("the target is not running");
        try
        {
            ReadLeading(p);
            p.Send(pendingWalkBytes.AsSpan(0, pendingWalkLength));
            ReadWalkAnswers(p);
        }
        catch (ProtocolViolation e)
        {
            throw ProtocolFault(p, e);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
    }

    /// <summary>
    /// The answers of the lookups asked so far in this case, by step; taken once. Lookups sent ahead
    /// are read up to the first operation the runner did not reach (a case that stopped early).
    /// </summary>
    public Dictionary<int, WalkAnswer> TakeWalkAnswers()
    {
        if (process is { } p && sent.Count > 0)
        {
            try
            {
                ReadLeading(p);
            }
            catch (ProtocolViolation e)
            {
                throw ProtocolFault(p, e);
            }
            catch (TargetFaultException)
            {
                Stop();
                throw;
            }
        }

        FlushWalks();
        var answers = new Dictionary<int, WalkAnswer>(walkAnswers);
        foreach (int step in droppedWalks)
        {
            answers.Remove(step);
        }

        walkAnswers.Clear();
        droppedWalks.Clear();
        return answers;
    }

    private void ReadWalkAnswers(TargetProcess p)
    {
        var walks = pendingWalks.ToArray();
        pendingWalks.Clear();
        pendingWalkLength = 0;
        foreach (var (step, _, _) in walks)
        {
            ReadWalkAnswer(p, step);
        }
    }

    private void ReadWalkAnswer(TargetProcess p, int step)
    {
        try
        {
            walkAnswers[step] = ReadWalkAnswer(p.Receive());
        }
        catch (ProtocolViolation e)
        {
            throw new TargetFaultException(Name, TargetFaultKind.Protocol, e.Rule, $"broke the protocol: {e.Message}", p.StderrTail) { StepIndex = step };
        }
        catch (TargetFaultException e) when (e.StepIndex is null)
        {
            // The lookup of this probe is what the target failed on, not the command it travelled with.
            throw new TargetFaultException(e.Target, e.Kind, e.Detail, e.Message[(e.Target.Length + 2)..], e.Log) { StepIndex = step };
        }
    }

    private static WalkAnswer ReadWalkAnswer(ReadOnlySpan<byte> body)
    {
        var reader = new FrameReader(body);
        var code = (Answer)reader.U8();
        if (code != Answer.Walk)
        {
            throw new ProtocolViolation("unexpected-answer", $"answer code 0x{(byte)code:x2} to WALK, not a WALK reply (0x82)");
        }

        byte status = reader.U8();
        ulong hpa = reader.U64();
        ulong size = reader.U64();
        byte permissions = reader.U8();
        reader.End("WALK reply");
        if (status > 1)
        {
            throw new ProtocolViolation("walk-status", $"WALK status {status} (0 translated or 1 not mapped)");
        }

        if (status == 0 && size is not (1UL << 12) and not (1UL << 21) and not (1UL << 30))
        {
            throw new ProtocolViolation("walk-page-size", $"WALK page size {size} (4096, 2 MiB or 1 GiB)");
        }

        return new WalkAnswer(status == 0, hpa, size, permissions);
    }

    /// <summary>The command writer: an operation is written here, then <see cref="Execute"/>d.</summary>
    public FrameWriter Writer => writer;

    public void SetEptpAnswer(ulong eptp, int walkLength)
    {
        Eptp = eptp;
        WalkLength = walkLength;
    }

    public ulong ArenaHpa => arenaHpa;

    /// <summary>
    /// Whether the walk for <paramref name="gpa"/> stays in the target's own tables: every table it
    /// passes through (present entries: bits 2:0, leaves at level 1 or bit 7) is an arena page. A raw
    /// edit can link a table anywhere; the target's lookup cannot follow a link to memory that is
    /// not its own, so it is not asked there.
    /// </summary>
    public bool WalkStaysInArena(ulong gpa)
    {
        if (Eptp == 0)
        {
            return true;
        }

        ulong table = Eptp & EptGeometry.AddressMask;
        for (var level = (EptLevel)WalkLength; level >= EptLevel.Pte; level--)
        {
            if (!InArena(table, out _, out _))
            {
                return false;
            }

            ulong value = Read(EptGeometry.EntryAddress(table, gpa, level));
            if ((value & 0b111) == 0 || level == EptLevel.Pte || (level is EptLevel.Pde or EptLevel.Pdpte && (value & EptGeometry.LargePage) != 0))
            {
                return true;
            }

            table = value & EptGeometry.AddressMask;
        }

        return true;
    }

    public ulong HpaLimit => 1UL << maxPhyAddr;

    /// <summary>The arena pages the target holds as host-physical addresses, for table accounting.</summary>
    public void HeldPages(List<Hpa> into)
    {
        foreach (uint page in held)
        {
            into.Add(new Hpa(arenaHpa + ((ulong)page << 12)));
        }
    }

    private void ReadEvents(ref FrameReader reader, List<HypervisorEffect>? effects)
    {
        uint count = reader.U32();
        if (count > TargetProcess.MaxBody / 5)
        {
            throw new ProtocolViolation("event-count", $"{count} events in one answer");
        }

        for (uint i = 0; i < count; i++)
        {
            var kind = (EventKind)reader.U8();
            uint value = reader.U32();
            switch (kind)
            {
                case EventKind.Alloc:
                    if (value >= usablePages)
                    {
                        throw new ProtocolViolation("alloc-out-of-range", $"ALLOC of arena page {value}; the case allows {usablePages}");
                    }

                    if (!held.Add(value))
                    {
                        throw new ProtocolViolation("alloc-held", $"ALLOC of arena page {value}, which it already holds");
                    }

                    touched.Add(value);
                    break;
                case EventKind.Free:
                    if (!held.Remove(value))
                    {
                        throw new ProtocolViolation("free-not-held", $"FREE of arena page {value}, which it does not hold (the SDK reports double frees as FAULT)");
                    }

                    touched.Add(value);
                    break;
                case EventKind.Invept:
                    if (value is not 1 and not 2)
                    {
                        throw new ProtocolViolation("invept-type", $"INVEPT event of type {value} (1 or 2)");
                    }

                    // The writes before the invalidation reach the translators before it.
                    Compare(effects);
                    effects?.Add(HypervisorEffect.Of((InveptType)value));
                    break;
                case EventKind.Write:
                    {
                        ulong word = reader.U64();
                        if (!journal)
                        {
                            throw new ProtocolViolation("write-outside-journal", "a WRITE event while journal mode is off");
                        }

                        uint page = value >> 9;
                        if (!held.Contains(page))
                        {
                            throw new ProtocolViolation("write-not-held", $"a WRITE event for arena page {page}, which the target does not hold");
                        }

                        if (journalRun.Count > 0 && journalRun[^1].Page != page)
                        {
                            FlushJournalRun(effects);
                        }

                        journalRun.Add((page, (int)(value & 511), word));
                        break;
                    }

                default:
                    throw new ProtocolViolation("unknown-event", $"event kind {(byte)kind} (1 to 4 allowed)");
            }
        }

        FlushJournalRun(effects);
    }

    /// <summary>
    /// Journal mode: the reported writes to one page become what the translators are told, as the
    /// page comparison would have made them (many changed words: one page effect).
    /// </summary>
    private void FlushJournalRun(List<HypervisorEffect>? effects)
    {
        if (journalRun.Count == 0)
        {
            return;
        }

        uint page = journalRun[0].Page;
        if (!told.TryGetValue(page, out var known))
        {
            known = new ulong[Arena.WordsPerPage];
            told[page] = known;
        }

        ulong address = arenaHpa + ((ulong)page << 12);
        if (journalRun.Count > PageEffectThreshold)
        {
            foreach (var (_, word, value) in journalRun)
            {
                known[word] = value;
            }

            effects?.Add(HypervisorEffect.OfPage(new Hpa(address), (ulong[])known.Clone()));
        }
        else
        {
            foreach (var (_, word, value) in journalRun)
            {
                if (known[word] != value)
                {
                    known[word] = value;
                    effects?.Add(HypervisorEffect.Of(new MemoryWrite(new Hpa(address + ((ulong)word << 3)), value)));
                }
            }
        }

        journalRun.Clear();
    }

    /// <summary>
    /// Every word of a held or just-released page that differs from what the translators were told
    /// becomes a write. In journal mode the target reports its writes itself (and may be ahead):
    /// nothing to compare.
    /// </summary>
    private void Compare(List<HypervisorEffect>? effects)
    {
        if (journal)
        {
            FlushJournalRun(effects);
            return;
        }

        CheckGivenBack();
        foreach (uint page in held)
        {
            ComparePage(page, effects);
        }

        foreach (uint page in touched)
        {
            if (!held.Contains(page))
            {
                ComparePage(page, effects);
            }
        }

        touched.Clear();
    }

    /// <summary>A page given back earlier must stay as it was: a change is a write through a dangling pointer.</summary>
    private void CheckGivenBack()
    {
        foreach (var (page, known) in told)
        {
            // A page given back in an earlier answer is not the target's any more: a change there
            // is a write through a dangling pointer (a page given back in this answer may have been
            // written before it went, and is compared below).
            if (!held.Contains(page) && !touched.Contains(page) && !harnessWritten.Contains(page) && !arena!.Page(page).SequenceEqual(known))
            {
                throw new TargetFaultException(Name, TargetFaultKind.Accounting, "write-after-free", $"wrote arena page {page} (hpa 0x{arenaHpa + ((ulong)page << 12):x}) after giving it back", process?.StderrTail);
            }
        }
    }

    private void ComparePage(uint page, List<HypervisorEffect>? effects)
    {
        var live = arena!.Page(page);
        if (!told.TryGetValue(page, out var known))
        {
            if (!live.ContainsAnyExcept(0UL))
            {
                return;
            }

            known = new ulong[Arena.WordsPerPage];
            told[page] = known;
        }
        else if (live.SequenceEqual(known))
        {
            return;
        }

        ulong address = arenaHpa + ((ulong)page << 12);
        int changed = 0;
        for (int i = 0; i < known.Length; i++)
        {
            changed += live[i] != known[i] ? 1 : 0;
        }

        if (changed > 16)
        {
            live.CopyTo(known);
            effects?.Add(HypervisorEffect.OfPage(new Hpa(address), (ulong[])known.Clone()));
            return;
        }

        for (int i = 0; i < known.Length; i++)
        {
            if (live[i] != known[i])
            {
                known[i] = live[i];
                effects?.Add(HypervisorEffect.Of(new MemoryWrite(new Hpa(address + ((ulong)i << 3)), live[i])));
            }
        }
    }

    /// <summary>True when <paramref name="hpa"/> lies in the case's arena window; then <paramref name="page"/> and <paramref name="word"/> locate it.</summary>
    private bool InArena(ulong hpa, out uint page, out int word)
    {
        ulong offset = hpa - arenaHpa;
        if (hpa >= arenaHpa && offset < ((ulong)usablePages << 12))
        {
            page = (uint)(offset >> 12);
            word = (int)((offset & 0xFFF) >> 3);
            return true;
        }

        page = 0;
        word = 0;
        return false;
    }

    /// <summary>The 512 words of the page at <paramref name="page"/> (page-aligned), as <see cref="Read"/> gives them.</summary>
    public void ReadPage(ulong page, Span<ulong> words)
    {
        var into = words[..Arena.WordsPerPage];
        if (InArena(page, out uint index, out _))
        {
            if (told.TryGetValue(index, out var known))
            {
                known.CopyTo(into);
            }
            else
            {
                into.Clear();
            }

            return;
        }

        if (outside.TryGetValue(page >> 12, out var outsideWords))
        {
            outsideWords.CopyTo(into);
        }
        else
        {
            into.Clear();
        }
    }

    /// <summary>
    /// Host memory as the translators know it: for the arena, what the target's answers so far
    /// wrote (the same bytes as the arena itself, except while operations sent ahead run).
    /// </summary>
    public ulong Read(ulong hpa)
    {
        if (InArena(hpa, out uint page, out int word))
        {
            return told.TryGetValue(page, out var known) ? known[word] : 0;
        }

        return outside.TryGetValue(hpa >> 12, out var words) ? words[(hpa & 0xFFF) >> 3] : 0;
    }

    /// <summary>
    /// A write by the harness (a raw step, or an A/D bit the translators already set): into the
    /// arena, where the target sees it at once, or into the harness's memory outside it (and to the
    /// target with WRITE when it has a guest-linear lookup, which reads the guest's tables there).
    /// The translators are told separately.
    /// </summary>
    public void Write(ulong hpa, ulong value)
    {
        if (process is { } p && sent.Count > 0)
        {
            // The plan ends a segment before every step that may write (PlanEncoder): what is still
            // unanswered here is lookups and JOURNAL off, read now so that the target is idle.
            try
            {
                Quiesce(p);
            }
            catch (ProtocolViolation e)
            {
                throw ProtocolFault(p, e);
            }
            catch (TargetFaultException)
            {
                Stop();
                throw;
            }
        }

        if (InArena(hpa, out uint page, out int word))
        {
            // A queued lookup must see the tables as they were when its probe ran: bits 8 and 9
            // (accessed, dirty) never change a software walk, anything else might.
            if (pendingWalks.Count > 0 && ((arena!.Page(page)[word] ^ value) & ~0x300UL) != 0)
            {
                FlushWalks();
            }

            arena!.Page(page)[word] = value;
            if (journal)
            {
                // The journal compares with this copy: a word the harness wrote is known, not the target's.
                arena.Shadow(page)[word] = value;
            }

            if (!told.TryGetValue(page, out var known))
            {
                known = new ulong[Arena.WordsPerPage];
                told[page] = known;
            }

            known[word] = value;
            if (!held.Contains(page))
            {
                harnessWritten.Add(page);
            }

            return;
        }

        if (!outside.TryGetValue(hpa >> 12, out var words))
        {
            words = new ulong[Arena.WordsPerPage];
            outside[hpa >> 12] = words;
        }

        words[(hpa & 0xFFF) >> 3] = value;
        // Only a guest-linear lookup reads memory outside the arena (the guest's page tables live
        // there); for every other target that memory is not its own.
        if (Declaration is { } d && d.Answers(linear: true) && process is not null)
        {
            writer.Begin(Command.Write).U64(hpa).U64(value);
            var result = ExecuteHarness(null);
            if (result != ApiResult.Ok)
            {
                throw new TargetFaultException(Name, TargetFaultKind.Protocol, "write-result", $"answered WRITE with {result}; it must answer ok", process?.StderrTail);
            }
        }
    }

    /// <summary>Pages that hold something, for a translator that copies host memory (the VMX oracle).</summary>
    public IEnumerable<Hpa> Pages
    {
        get
        {
            foreach (var page in told.Keys)
            {
                yield return new Hpa(arenaHpa + ((ulong)page << 12));
            }

            foreach (var page in outside.Keys)
            {
                yield return new Hpa(page << 12);
            }
        }
    }

    /// <summary>The target broke the protocol: a protocol finding with its stderr tail; the process is stopped.</summary>
    private TargetFaultException ProtocolFault(TargetProcess p, ProtocolViolation e)
    {
        string log = p.StderrTail;
        Stop();
        return new TargetFaultException(Name, TargetFaultKind.Protocol, e.Rule, $"broke the protocol: {e.Message}", log);
    }

    /// <summary>Kills the process; the next case starts a fresh one.</summary>
    public void Stop()
    {
        var p = process;
        process = null;
        p?.Kill();
        p?.Dispose();
        // A new process gets a new arena: the old file was unlinked once its target mapped it.
        arena?.Dispose();
        arena = null;
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        disposed = true;
        Stop();
    }
}

/// <summary>A WALK answer: mapped or not, where, the leaf's size, the permissions of the translation.</summary>
internal readonly record struct WalkAnswer(bool Mapped, ulong Hpa, ulong PageSize, byte Permissions);
