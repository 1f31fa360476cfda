namespace EptFuzz.Targets.Vmx.Session;

/// <summary>What one boot cost: wall time, probes answered by the VM, script commands, kernel bytes.</summary>
public sealed record BootStatistics(TimeSpan Elapsed, int ProbesRun, int Commands, int KernelBytes);
