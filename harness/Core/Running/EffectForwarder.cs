using EptFuzz.Contract;
using EptFuzz.Harness.Intent;

namespace EptFuzz.Harness.Running;

/// <summary>
/// Who the runner is calling now: an exception that escapes is that component's crash. Kept as
/// an index (set before every call into a session, once per forwarded write) and named only
/// when something threw.
/// </summary>
internal sealed class Blame(IEptHypervisor hypervisor, IReadOnlyList<ITarget> targets)
{
    /// <summary>The index of the target being called, or -1 for the hypervisor.</summary>
    private int target = -1;

    public bool IsHypervisor => target < 0;

    public string Who => target < 0 ? hypervisor.Name : targets[target].Name;

    public void Hypervisor() => target = -1;

    public void Target(int index) => target = index;
}

/// <summary>
/// Hands the hypervisor's writes and INVEPTs to every translator session, in order, and keeps
/// what the runner must know about them: the words they replaced (a mirror of host memory), which
/// pages hold EPT tables, which entries raw writes made stale.
/// </summary>
internal sealed class EffectForwarder(
    IEptHypervisor hypervisor, ITargetSession[] sessions, IntentModel intent, StaleTranslations stale, RunScratch scratch, Blame blame)
{
    private readonly List<HypervisorEffect> effects = scratch.Effects;
    /// <summary>Host memory as the translators see it, kept only to know what a raw write overwrote.</summary>
    private readonly WordMirror mirror = scratch.Mirror;
    /// <summary>4 KiB page numbers that hold EPT entries written by operations.</summary>
    private readonly HashSet<ulong> tablePages = scratch.TablePages;
    /// <summary>The page last added to <see cref="tablePages"/>: operations write runs of entries into one page.</summary>
    private ulong lastTablePage = ulong.MaxValue;

    /// <summary>True once a raw write (edit, poke, guest-table write) changed a word of an EPT table page.</summary>
    public bool TablesRawWritten { get; private set; }

    /// <summary>The 4 KiB pages (addresses) the last <see cref="Forward"/> wrote, each listed once per run of writes into it.</summary>
    public List<ulong> PagesWritten { get; } = scratch.PagesWritten;

    /// <summary>The root of a new EPTP is a table page.</summary>
    public void AddTablePage(ulong root) => tablePages.Add(root >> 12);

    /// <param name="raw">The writes are raw (edit, poke, guest tables): they may leave stale translations.</param>
    /// <param name="tables">The writes are an operation's own table writes (so their pages are table pages).</param>
    public void Forward(bool raw, bool tables)
    {
        effects.Clear();
        PagesWritten.Clear();
        blame.Hypervisor();
        hypervisor.DrainEffects(effects);
        foreach (var effect in effects)
        {
            switch (effect.Kind)
            {
                case EffectKind.Invept:
                    stale.OnInvept(effect.InveptType, hypervisor.Eptp & EptAddress.Mask);
                    for (int t = 0; t < sessions.Length; t++)
                    {
                        blame.Target(t);
                        sessions[t].Invept(effect.InveptType);
                    }

                    break;
                case EffectKind.Page:
                    ForwardPage(effect.Write.Address, effect.Words!, raw, tables);
                    break;
                default:
                    ForwardWrite(effect.Write, raw, tables);
                    break;
            }
        }
    }

    /// <summary>
    /// The translators agreed on the A/D bits an access set: write them into the hypervisor's
    /// memory too (unjournaled: every session already applied its own), so that an operation that
    /// later rewrites an entry starts from the bytes the processor left.
    /// </summary>
    public void CommitWrites(Observation baseline)
    {
        foreach (var w in baseline.Writes)
        {
            mirror.Exchange(w.Address.Value, w.Value);
            blame.Hypervisor();
            hypervisor.Memory.Write(w.Address, w.Value);
        }
    }

    /// <summary>A whole page the hypervisor wrote (a new table): copied at once when nothing needs the words it replaced.</summary>
    private void ForwardPage(Hpa page, ulong[] words, bool raw, bool tables)
    {
        if (raw || !tables)
        {
            for (int i = 0; i < words.Length; i++)
            {
                ForwardWrite(new MemoryWrite(new Hpa(page.Value + ((ulong)i << 3)), words[i]), raw, tables);
            }

            return;
        }

        PagesWritten.Add(page.Value);
        mirror.WritePage(page.Value, words);
        lastTablePage = page.Value >> 12;
        tablePages.Add(lastTablePage);
        for (int t = 0; t < sessions.Length; t++)
        {
            blame.Target(t);
            sessions[t].WritePage(page, words);
        }
    }

    private void ForwardWrite(MemoryWrite write, bool raw, bool tables)
    {
        ulong address = write.Address.Value;
        ulong old = mirror.Exchange(address, write.Value);
        ulong page = address & ~0xFFFUL;
        if (PagesWritten.Count == 0 || PagesWritten[^1] != page)
        {
            PagesWritten.Add(page);
        }

        if (tables)
        {
            if (address >> 12 != lastTablePage)
            {
                lastTablePage = address >> 12;
                tablePages.Add(lastTablePage);
            }
        }
        else if (tablePages.Contains(address >> 12) && write.Value != old)
        {
            // A raw write landed in an EPT table page: the intent no longer knows what maps where.
            TablesRawWritten = true;
            intent.MarkAllUnknown();
        }

        if (raw)
        {
            stale.OnRawWrite(address, old, write.Value);
        }

        for (int t = 0; t < sessions.Length; t++)
        {
            blame.Target(t);
            sessions[t].Write(write);
        }
    }
}
