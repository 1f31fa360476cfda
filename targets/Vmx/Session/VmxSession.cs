using EptFuzz.Contract;
using EptFuzz.Targets.Vmx.Image;
using EptFuzz.Targets.Vmx.Runner;

namespace EptFuzz.Targets.Vmx.Session;

/// <summary>
/// One case on the VMX oracle: a batch session. It records every call, and <see cref="Finish"/>
/// builds one image for the whole case, boots the emulator once and answers every probe.
/// </summary>
public sealed class VmxSession : ITargetSession
{
    private readonly IEmulator emulator;
    private readonly CpuCapabilities caseCpu;
    private readonly EmulatedCpu cpu;
    private readonly List<CaseStep> steps = [];
    private string? planProblem;
    private bool finished;

    internal VmxSession(IEmulator emulator, CpuCapabilities caseCpu, EmulatedCpu cpu)
    {
        this.emulator = emulator;
        this.caseCpu = caseCpu;
        this.cpu = cpu;
    }

    /// <summary>
    /// Known once <see cref="Finish"/> has planned the case: a capability of the case's cpu that
    /// differs from the emulated processor where the case uses it, or anything else that keeps the
    /// whole case from running.
    /// </summary>
    public string? UnsupportedReason => planProblem;

    /// <summary>Statistics of the last boot (for the README's cost figures and for tests).</summary>
    public BootStatistics? Statistics { get; private set; }

    public void SetEptp(ulong eptp) => Record(CaseStep.OfEptp(eptp));

    public void SetControls(VmxControls controls) => Record(CaseStep.Of(controls));

    public void SetGuestPaging(GuestPaging paging) => Record(CaseStep.Of(paging));

    public void Write(MemoryWrite write) => Record(CaseStep.Of(write));

    public void Invept(InveptType type) => Record(CaseStep.OfInvept());

    public Observation? Submit(in Probe probe)
    {
        Record(CaseStep.Of(probe));
        return null;
    }

    public IReadOnlyDictionary<int, Observation> Finish()
    {
        ObjectDisposedException.ThrowIf(finished, this);
        finished = true;
        var result = new Dictionary<int, Observation>();
        var planner = new CasePlanner(steps, caseCpu, cpu);
        var (script, probes, problem) = planner.Plan();
        planProblem = problem;
        DiskImage? image = null;
        if (problem is null && probes.Any(p => p.Runs || p.Dumped))
        {
            try
            {
                image = DiskImage.Build(script, planner.Relocation.RamBytesNeeded);
            }
            catch (ImageTooLargeException tooLarge)
            {
                planProblem = $"the case does not fit into one boot image: {tooLarge.Message}";
            }
        }

        if (planProblem is not null)
        {
            foreach (var plan in probes)
            {
                result[plan.Probe.Step] = Observation.Unsupported(plan.Unsupported ?? planProblem);
            }

            return result;
        }

        OracleReport? report = null;
        if (image is not null)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            report = OracleBoot.Run(emulator, image);
            Statistics = new BootStatistics(watch.Elapsed, probes.Count(p => p.Runs || p.Dumped), script.Count, image.KernelBytes);
            if (!report.VmxReady)
            {
                throw new TargetFailureException(emulator.Name, $"the kernel did not reach VMX operation ({report.NoVmx ?? "no reason printed"})");
            }
        }

        var decoder = new ObservationDecoder(emulator.Name, report ?? OracleReportEmpty.Value, planner.Relocation, caseCpu, cpu, planner.WindowBase, planner.GuestWindowSlot, planner.AmbiguousSizePages);
        foreach (var plan in probes)
        {
            result[plan.Probe.Step] = decoder.Decode(plan);
        }

        return result;
    }

    public void Dispose()
    {
        finished = true;
    }

    private void Record(CaseStep step)
    {
        ObjectDisposedException.ThrowIf(finished, this);
        steps.Add(step);
    }
}
