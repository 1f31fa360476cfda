using EptFuzz.Contract;

namespace EptFuzz.Harness.Running;

/// <summary>
/// The collections a case fills, kept per thread with their capacity for the next case: a worker
/// runs thousands of cases a second on one thread, and growing them anew for each was a tenth of
/// what a case allocated. Nothing in them outlives the case (results copy).
/// </summary>
internal sealed class RunScratch
{
    [ThreadStatic]
    private static RunScratch? free;

    public readonly List<HypervisorEffect> Effects = new(64);
    public readonly WordMirror Mirror = new();
    public readonly HashSet<ulong> StaleEntries = [];
    public readonly Dictionary<int, Observation?[]> ProbeObservations = [];
    public readonly HashSet<ulong> RootsSinceGlobalInvept = [];
    public readonly HashSet<ulong> TablePages = [];
    public readonly List<(int Step, Observation Baseline, bool Stale)> Probes = [];
    public readonly List<ulong> PagesWritten = [];

    /// <summary>This thread's scratch, or a new one when a case runs inside another on the same thread.</summary>
    public static RunScratch Rent()
    {
        var scratch = free ?? new RunScratch();
        free = null;
        return scratch;
    }

    /// <summary>Clears the scratch and keeps it for this thread's next case.</summary>
    public void Return()
    {
        Effects.Clear();
        Mirror.Release();
        StaleEntries.Clear();
        ProbeObservations.Clear();
        RootsSinceGlobalInvept.Clear();
        // A case that touched thousands of table pages does not leave that capacity behind.
        bool large = TablePages.Count > 4096;
        TablePages.Clear();
        if (large)
        {
            TablePages.TrimExcess();
        }

        Probes.Clear();
        PagesWritten.Clear();
        free = this;
    }
}
