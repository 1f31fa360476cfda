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
    /// Starts a case: the target forgets everything, then loads the default EPTP; the arena pages the
    /// harness wrote are zeroed. The EPTP's result and value count only when RESET answered ok.
    /// </summary>
    public (ApiResult Reset, ApiResult SetEptp, ulong Eptp) Reset(CpuCapabilities cpu, EptpRequest defaultEptp, List<HypervisorEffect> effects)
    {
        EnsureRunning();
        foreach (uint page in harnessWritten)
        {
            arena!.Clear(page);
        }

        harnessWritten.Clear();
        pendingWalks.Clear();
        pendingWalkLength = 0;
        walkAnswers.Clear();
        held.Clear();
        touched.Clear();
        told.Clear();
        outside.Clear();
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
        var reset = writer.Begin(Command.Reset).U64(arenaHpa).U32(usablePages).U8((byte)cpu.MaxPhyAddr).U16(flags).Finish().ToArray();
        // The case format's default EPTP travels with RESET: one round trip for both.
        writer.Begin(Command.SetEptp).U8((byte)defaultEptp.MemoryType).U8((byte)defaultEptp.WalkLength).U8(defaultEptp.AccessedDirty ? (byte)1 : (byte)0);
        var p = process!;
        try
        {
            p.Send(reset);
            p.Send(writer.Finish());
            var result = ReadOperationReply(p, null, out _);
            var eptpResult = ReadOperationReply(p, effects, out ulong eptp);
            if (result == ApiResult.Ok)
            {
                SetEptpAnswer(eptp, eptpResult == ApiResult.Ok ? defaultEptp.WalkLength : WalkLength);
            }

            return (result, eptpResult, eptp);
        }
        catch (ProtocolViolation e)
        {
            string log = p.StderrTail;
            Stop();
            throw new TargetFaultException(Name, TargetFaultKind.Protocol, e.Rule, $"broke the protocol: {e.Message}", log);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
    }

    /// <summary>Sends an operation command already written into <see cref="Writer"/>; appends what it changed.</summary>
    public ApiResult Execute(List<HypervisorEffect>? effects, out ulong extra)
    {
        var p = process ?? throw new InvalidOperationException("the target is not running");
        try
        {
            if (pendingWalks.Count > 0)
            {
                p.Send(pendingWalkBytes.AsSpan(0, pendingWalkLength));
                p.Send(writer.Finish());
                ReadWalkAnswers(p);
            }
            else
            {
                p.Send(writer.Finish());
            }

            return ReadOperationReply(p, effects, out extra);
        }
        catch (ProtocolViolation e)
        {
            string log = p.StderrTail;
            Stop();
            throw new TargetFaultException(Name, TargetFaultKind.Protocol, e.Rule, $"broke the protocol: {e.Message}", log);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
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

                case Answer.Notify:
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

        var p = process ?? throw new InvalidOperationException("the target is not running");
        try
        {
            p.Send(pendingWalkBytes.AsSpan(0, pendingWalkLength));
            ReadWalkAnswers(p);
        }
        catch (TargetFaultException)
        {
            Stop();
            throw;
        }
    }

    /// <summary>The answers of the lookups flushed so far in this case, by step; taken once.</summary>
    public Dictionary<int, WalkAnswer> TakeWalkAnswers()
    {
        FlushWalks();
        var answers = new Dictionary<int, WalkAnswer>(walkAnswers);
        walkAnswers.Clear();
        return answers;
    }

    private void ReadWalkAnswers(TargetProcess p)
    {
        var walks = pendingWalks.ToArray();
        pendingWalks.Clear();
        pendingWalkLength = 0;
        foreach (var (step, _, _) in walks)
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
                default:
                    throw new ProtocolViolation("unknown-event", $"event kind {(byte)kind} (1 to 3 allowed)");
            }
        }
    }

    /// <summary>Every word of a held or just-released page that differs from what the translators were told becomes a write.</summary>
    private void Compare(List<HypervisorEffect>? effects)
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

    public ulong Read(ulong hpa)
    {
        if (InArena(hpa, out uint page, out int word))
        {
            return arena!.Page(page)[word];
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
        if (InArena(hpa, out uint page, out int word))
        {
            // A queued lookup must see the tables as they were when its probe ran: bits 8 and 9
            // (accessed, dirty) never change a software walk, anything else might.
            if (pendingWalks.Count > 0 && ((arena!.Page(page)[word] ^ value) & ~0x300UL) != 0)
            {
                FlushWalks();
            }

            arena!.Page(page)[word] = value;
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
        if (Declaration is { } d && d.Walkers.HasFlag(TargetWalkers.GuestLinear) && process is not null)
        {
            writer.Begin(Command.Write).U64(hpa).U64(value);
            var result = Execute(null, out _);
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
