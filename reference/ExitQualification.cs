namespace EptFuzz.Reference;

/// <summary>
/// The exit qualification of an EPT violation, bits 0-12.
/// See: "Exit Qualification for EPT Violations" (§27.2.1, Table 27-7; newer Tables 28-7 … 30-7), EPT-EXITQ-1.
/// </summary>
public readonly record struct ExitQualification(ulong Value)
{
    // [0] the access was a data read
    public const ulong DataRead = 1UL << 0;
    // [1] the access was a data write
    public const ulong DataWrite = 1UL << 1;
    // [2] the access was an instruction fetch
    public const ulong InstructionFetch = 1UL << 2;
    // [3] the GPA was readable (AND of bit 0 over the walk)
    public const ulong Readable = 1UL << 3;
    // [4] the GPA was writable (AND of bit 1)
    public const ulong Writable = 1UL << 4;
    // [5] the GPA was executable (AND of bit 2; supervisor-mode executable under MBEC)
    public const ulong Executable = 1UL << 5;
    // [6] under MBEC: the GPA was user-mode executable (AND of bit 10)
    public const ulong UserExecutable = 1UL << 6;
    // [7] the guest-linear-address field is valid
    public const ulong GuestLinearAddressValid = 1UL << 7;
    // [8] (bit 7 = 1) the access was to the final translation, not to a guest paging-structure entry
    public const ulong FinalTranslation = 1UL << 8;
    // [9] advanced information: the linear address is user-mode
    public const ulong UserModeLinearAddress = 1UL << 9;
    // [10] advanced information: the linear address maps a read/write page
    public const ulong ReadWritePage = 1UL << 10;
    // [11] advanced information: the linear address maps an execute-disable page
    public const ulong ExecuteDisablePage = 1UL << 11;
    // [12] NMI unblocking due to IRET (never set by the model: it has no IRET)
    public const ulong NmiUnblocking = 1UL << 12;

    public override string ToString() => $"0x{Value:x}";
}
