namespace EptFuzz.Targets.Vmx.Runner;

/// <summary>Whether this host can give a QEMU/KVM guest VMX (nested virtualization on an Intel host).</summary>
public static class NestedVmx
{
    /// <summary>Null when nested VMX looks usable; otherwise "unavailable: reason".</summary>
    public static string? Unavailable(string root = "/")
    {
        string kvm = Path.Combine(root, "dev/kvm");
        if (!File.Exists(kvm))
        {
            return "unavailable: /dev/kvm does not exist (no KVM on this host)";
        }

        string cpuinfo = Path.Combine(root, "proc/cpuinfo");
        bool vmx = File.Exists(cpuinfo) && File.ReadLines(cpuinfo)
            .Where(l => l.StartsWith("flags", StringComparison.Ordinal))
            .Any(l => l.Split(' ', ':', '\t').Contains("vmx"));
        if (!vmx)
        {
            return "unavailable: the host CPU has no vmx flag (no VT-x here, so KVM cannot offer nested VMX)";
        }

        string nested = Path.Combine(root, "sys/module/kvm_intel/parameters/nested");
        if (!File.Exists(nested))
        {
            return "unavailable: kvm_intel is not loaded (load it with nested=1)";
        }

        string value = File.ReadAllText(nested).Trim();
        return value is "Y" or "1" ? null : $"unavailable: kvm_intel nested={value} (reload kvm_intel with nested=1)";
    }
}
